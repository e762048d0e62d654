//! Example measures per Tiltakssirkel box, offered as suggestions in chat.
//! Written for tilstede; small and concrete, as the model asks.

use super::model::{Case, CircleBox};

/// Suggested measures for a box.
pub fn for_box(b: CircleBox) -> &'static [&'static str] {
    match b {
        CircleBox::RelasjonVoksne => &[
            "En fast voksen tar imot eleven i døra hver morgen",
            "Kontaktlærer har en kort samtale med eleven på fast tidspunkt hver uke",
            "Eleven får en voksen å gå til når skoledagen blir vanskelig",
            "Den faste voksne sender en hilsen hjem når eleven har vært på skolen",
        ],
        CircleBox::RelasjonMedelever => &[
            "Eleven får en fast makker i timene og i friminuttene",
            "Voksne organiserer aktiviteter i friminuttene som eleven kan bli med på",
            "Klassen får faste grupper over tid, satt sammen av læreren",
            "En medelev henter eleven på vei til skolen",
        ],
        CircleBox::Mestring => &[
            "Arbeidsmengden tilpasses en periode, med mål eleven kan nå",
            "Eleven får vite på forhånd hva timen skal handle om",
            "Eleven får gjøre ferdig oppgaver sammen med en voksen",
            "Eleven får ros for oppmøte, ikke bare for resultater",
        ],
        CircleBox::Struktur => &[
            "Eleven får en visuell dagsplan og vet hvem som har hver time",
            "En redusert timeplan i en kort periode, med en plan for å øke",
            "Et fast sted å være når timeplanen endres",
            "Forutsigbar overgang mellom friminutt og time",
        ],
        CircleBox::ForeldresTillit => &[
            "Skolen ringer hjem etter en god dag, ikke bare når noe er galt",
            "Fast ukentlig kontakt mellom hjem og kontaktlærer i avtaleperioden",
            "Foresatte får vite konkret hva skolen gjør, og hvem de kan ringe",
            "Møtene legges til tider foresatte kan delta",
        ],
        CircleBox::Fritid => &[
            "Eleven får hjelp til å finne en fritidsaktivitet sammen med jevnaldrende",
            "Skolen tipser om aktiviteter der medelever allerede er med",
            "Avtale hjemme om at fritidsaktiviteter følger skoledager",
        ],
        CircleBox::Hjemmeforhold => &[
            "Helsesykepleier hjelper foresatte med morgen- og leggerutiner",
            "Faste rutiner for skjermbruk om kvelden",
            "Foresatte følger eleven til skolen i en periode",
        ],
        CircleBox::Individuelle => &[
            "Eleven får snakke med helsesykepleier jevnlig",
            "Fastlegen vurderer somatiske plager eleven forteller om",
            "Eleven lærer enkle teknikker for å håndtere uro om morgenen",
        ],
    }
}

/// Suggestions for one box, as a chat line.
pub fn for_box_text(b: CircleBox) -> String {
    format!(
        "Forslag til små tiltak i «{}»: {}.",
        b.norwegian(),
        for_box(b).join("; ")
    )
}

/// Suggestions for every box of `case` where a risk is noted, as chat text.
pub fn for_risks(case: &Case) -> String {
    let lines: Vec<String> = CircleBox::ALL
        .iter()
        .zip(&case.mapping)
        .filter(|(_, m)| !m.risks.is_empty())
        .map(|(b, m)| format!("{} (risiko: {})", for_box_text(*b), m.risks.join("; ")))
        .collect();
    if lines.is_empty() {
        return format!(
            "Ingen risiko er notert i tiltakssirkelen for sak {} ennå. Noter med !kartlegg {} BOKS risiko TEKST.",
            case.number, case.number
        );
    }
    format!("Sak {}:\n{}", case.number, lines.join("\n"))
}

/// Whether the routine advises starting the mapping in this box.
pub fn good_place_to_start(b: CircleBox) -> bool {
    !matches!(b, CircleBox::Hjemmeforhold | CircleBox::Individuelle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_box_has_suggestions() {
        for b in CircleBox::ALL {
            assert!(for_box(*b).len() >= 3, "{b:?}");
        }
        assert!(good_place_to_start(CircleBox::RelasjonVoksne));
        assert!(!good_place_to_start(CircleBox::Hjemmeforhold));
    }
}
