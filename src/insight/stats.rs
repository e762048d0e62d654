//! The tail probabilities the pattern tests use. Exact sums over
//! log-probabilities: the counts are small (hundreds of school days,
//! thousands of lessons at most), so no approximation is needed.

/// `ln(n!)`.
fn ln_factorial(n: u32) -> f64 {
    (2..=n).map(|i| f64::from(i).ln()).sum()
}

/// `ln(C(n, k))`; `None` when `k > n`.
fn ln_choose(n: u32, k: u32) -> Option<f64> {
    (k <= n).then(|| ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k))
}

/// P(X ≥ k) for X hypergeometric: `n` draws without replacement from
/// `population` items of which `successes` are marked.
///
/// This is the exact test for "are the absence days a random choice of
/// school days?": of `population` school days, `successes` are Mondays; the
/// pupil was away on `n` of them; how likely are `k` or more Mondays?
pub fn hypergeometric_sf(k: u32, population: u32, successes: u32, n: u32) -> f64 {
    if k == 0 {
        return 1.0;
    }
    let (Some(total), true) = (ln_choose(population, n), n <= population && successes <= population) else {
        return 0.0;
    };
    let hi = n.min(successes);
    let mut p = 0.0;
    for i in k..=hi {
        if let (Some(a), Some(b)) = (ln_choose(successes, i), ln_choose(population - successes, n - i)) {
            p += (a + b - total).exp();
        }
    }
    p.min(1.0)
}

/// P(X ≥ k) for X the number of successes in independent trials with the
/// given probabilities (the Poisson binomial distribution; with equal
/// probabilities it is the binomial one). Computed by the exact dynamic
/// programme over the trials.
pub fn poisson_binomial_sf(k: usize, probabilities: &[f64]) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > probabilities.len() {
        return 0.0;
    }
    // dist[j] = P(j successes so far)
    let mut dist = vec![0.0f64; probabilities.len() + 1];
    dist[0] = 1.0;
    for (i, &p) in probabilities.iter().enumerate() {
        let p = p.clamp(0.0, 1.0);
        for j in (1..=i + 1).rev() {
            dist[j] = dist[j] * (1.0 - p) + dist[j - 1] * p;
        }
        dist[0] *= 1.0 - p;
    }
    dist[k..].iter().sum::<f64>().min(1.0)
}

/// P(X ≥ k) for X binomial(n, p).
pub fn binomial_sf(k: u32, n: u32, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    if p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    let mut sum = 0.0;
    for i in k..=n {
        if let Some(c) = ln_choose(n, i) {
            sum += (c + f64::from(i) * lp + f64::from(n - i) * lq).exp();
        }
    }
    sum.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1e-12) + 1e-15
    }

    #[test]
    fn hypergeometric_matches_a_hand_count() {
        // 60 school days, 12 Mondays, 9 absence days, 6 or more Mondays:
        // (C(12,6)C(48,3) + C(12,7)C(48,2) + C(12,8)C(48,1) + C(12,9)) / C(60,9).
        let expected = (924.0 * 17296.0 + 792.0 * 1128.0 + 495.0 * 48.0 + 220.0) / 14_783_142_660.0;
        assert!(close(hypergeometric_sf(6, 60, 12, 9), expected));
        assert_eq!(hypergeometric_sf(0, 60, 12, 9), 1.0);
        assert_eq!(hypergeometric_sf(10, 60, 12, 9), 0.0);
        // Every draw is a success.
        assert!(close(hypergeometric_sf(3, 5, 5, 3), 1.0));
    }

    #[test]
    fn poisson_binomial_with_equal_probabilities_is_binomial() {
        for (k, n, p) in [(3u32, 10u32, 0.2), (1, 1, 0.5), (7, 20, 1.0 / 6.0), (15, 40, 0.25)] {
            let pb = poisson_binomial_sf(k as usize, &vec![p; n as usize]);
            assert!(close(pb, binomial_sf(k, n, p)), "{k} {n} {p}: {pb}");
        }
        // Two fair coins: P(at least one head) = 3/4.
        assert!(close(poisson_binomial_sf(1, &[0.5, 0.5]), 0.75));
        assert!(close(poisson_binomial_sf(2, &[0.5, 0.25]), 0.125));
    }

    #[test]
    fn tails_are_probabilities() {
        for k in 0..=12 {
            let h = hypergeometric_sf(k, 40, 8, 12);
            let b = binomial_sf(k, 12, 0.2);
            assert!((0.0..=1.0).contains(&h) && (0.0..=1.0).contains(&b));
        }
        // Tails shrink as k grows.
        assert!(hypergeometric_sf(4, 40, 8, 12) > hypergeometric_sf(5, 40, 8, 12));
    }
}
