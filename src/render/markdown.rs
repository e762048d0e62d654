//! The small Markdown subset the templates use, to HTML and plain text.
//! Lines: `# `/`## `/`### ` headings, `- ` bullets, blank-line paragraphs;
//! inline: `**bold**`. Everything else is text and is HTML-escaped.

/// Collapses runs of blank lines and trims the ends, so templates may be
/// written with generous spacing.
pub fn tidy(text: &str) -> String {
    let mut out = String::new();
    let mut blank = true;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            if !blank {
                out.push('\n');
            }
            blank = true;
        } else {
            out.push_str(line);
            out.push('\n');
            blank = false;
        }
    }
    let trimmed = out.trim_end();
    format!("{trimmed}\n")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `**x**` → `<strong>x</strong>` on escaped text.
fn inline_html(s: &str) -> String {
    let escaped = escape(s);
    let mut out = String::new();
    let mut open = false;
    let mut rest = escaped.as_str();
    while let Some(i) = rest.find("**") {
        out.push_str(&rest[..i]);
        out.push_str(if open { "</strong>" } else { "<strong>" });
        open = !open;
        rest = &rest[i + 2..];
    }
    out.push_str(rest);
    if open {
        out.push_str("</strong>");
    }
    out
}

fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.chars().take_while(|c| *c == '#').count();
    if (1..=3).contains(&level) {
        line[level..].strip_prefix(' ').map(|t| (level, t))
    } else {
        None
    }
}

/// HTML as Matrix clients accept in `formatted_body`.
pub fn to_html(md: &str) -> String {
    let mut out = String::new();
    let mut list = false;
    let mut para: Vec<String> = Vec::new();
    let flush = |out: &mut String, para: &mut Vec<String>| {
        if !para.is_empty() {
            out.push_str(&format!("<p>{}</p>\n", para.join("<br>")));
            para.clear();
        }
    };
    for line in md.lines() {
        if let Some(item) = line.strip_prefix("- ") {
            flush(&mut out, &mut para);
            if !list {
                out.push_str("<ul>\n");
                list = true;
            }
            out.push_str(&format!("<li>{}</li>\n", inline_html(item)));
            continue;
        }
        if list {
            out.push_str("</ul>\n");
            list = false;
        }
        if let Some((level, text)) = heading(line) {
            flush(&mut out, &mut para);
            out.push_str(&format!("<h{level}>{}</h{level}>\n", inline_html(text)));
        } else if line.trim().is_empty() {
            flush(&mut out, &mut para);
        } else {
            para.push(inline_html(line));
        }
    }
    if list {
        out.push_str("</ul>\n");
    }
    flush(&mut out, &mut para);
    out
}

/// Plain text: headings underlined by case, bullets as `•`, no markup.
pub fn to_plain(md: &str) -> String {
    let mut out = String::new();
    for line in md.lines() {
        let line = line.replace("**", "");
        if let Some((level, text)) = heading(&line) {
            if level == 1 {
                out.push_str(&text.to_uppercase());
            } else {
                out.push_str(text);
            }
            out.push('\n');
        } else if let Some(item) = line.strip_prefix("- ") {
            out.push_str("• ");
            out.push_str(item);
            out.push('\n');
        } else {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_and_structures() {
        let md = "# Tittel\n\nEn **fet** <b>linje</b>\nnummer to\n\n- a & b\n- c\n\nslutt\n";
        assert_eq!(
            to_html(md),
            "<h1>Tittel</h1>\n<p>En <strong>fet</strong> &lt;b&gt;linje&lt;/b&gt;<br>nummer to</p>\n<ul>\n<li>a &amp; b</li>\n<li>c</li>\n</ul>\n<p>slutt</p>\n"
        );
        assert_eq!(to_plain("# Tittel\n- **a**\n"), "TITTEL\n• a\n");
        assert_eq!(tidy("\n\na\n\n\n\nb  \n\n"), "a\n\nb\n");
    }
}
