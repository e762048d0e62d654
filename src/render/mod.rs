//! Norwegian documents and chat messages from templates (minijinja).
//!
//! Every template is written once, in a small Markdown subset (headings,
//! bullet lists, paragraphs, `**bold**`), and rendered to three forms:
//! Markdown for archiving, HTML for Matrix (`formatted_body`) and plain
//! text (`body`). A municipality overrides a template by putting a file of
//! the same name (`samarbeidsavtale.md.j2`, …) in its template directory.
//!
//! What goes in is prepared here, not in templates: dates the Norwegian
//! way, names of phases and roles. Pupils appear by initials and class only;
//! nothing from the absence sources' free text or reasons is ever passed in.

mod context;
mod markdown;
pub mod plural;

pub use context::{
    case_context, case_context_for_meeting, notice_context, school_digest_context, teacher_digest_context, when,
    with_patterns,
};
pub use plural::{count, count_len, count_text};

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use std::path::Path;

/// What went wrong while rendering.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template has a syntax error or failed while rendering.
    #[error("malen «{name}»: {message}")]
    Template {
        /// The template's file name.
        name: String,
        /// The error, with the line when known.
        message: String,
    },
    /// The template directory could not be read.
    #[error("malmappen {path}: {message}")]
    Directory {
        /// The directory.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// No template has that name.
    #[error("ukjent mal «{0}»")]
    Unknown(String),
}

/// The documents and messages tilstede renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Document {
    /// Guide for the first conversation with pupil and parents.
    FirstConversation,
    /// Guide for talking with the pupil when the absence persists.
    PupilConversation,
    /// Agenda of a phase 3 meeting.
    AgendaPhase3,
    /// Agenda of a phase 4 meeting.
    AgendaPhase4,
    /// Minutes, prefilled with the case facts.
    Referat,
    /// The samarbeidsavtale.
    Samarbeidsavtale,
    /// The evaluation of an agreement, with numbers.
    Evaluering,
    /// The handoff summary for the fagkoordinator.
    Overforing,
    /// A contact teacher's monthly review.
    DigestTeacher,
    /// Leadership's half-yearly review.
    DigestSchool,
    /// A chat notice.
    Notice,
}

impl Document {
    /// Every document.
    pub const ALL: [Document; 11] = [
        Document::FirstConversation,
        Document::PupilConversation,
        Document::AgendaPhase3,
        Document::AgendaPhase4,
        Document::Referat,
        Document::Samarbeidsavtale,
        Document::Evaluering,
        Document::Overforing,
        Document::DigestTeacher,
        Document::DigestSchool,
        Document::Notice,
    ];

    /// The template's file name.
    pub fn file(self) -> &'static str {
        match self {
            Document::FirstConversation => "forste-samtale.md.j2",
            Document::PupilConversation => "elevsamtale.md.j2",
            Document::AgendaPhase3 => "dagsorden-fase3.md.j2",
            Document::AgendaPhase4 => "dagsorden-fase4.md.j2",
            Document::Referat => "referat.md.j2",
            Document::Samarbeidsavtale => "samarbeidsavtale.md.j2",
            Document::Evaluering => "evaluering.md.j2",
            Document::Overforing => "overforing.md.j2",
            Document::DigestTeacher => "oversikt-kontaktlaerer.md.j2",
            Document::DigestSchool => "oversikt-skole.md.j2",
            Document::Notice => "melding.md.j2",
        }
    }

    /// The short name used on the command line.
    pub fn name(self) -> &'static str {
        self.file().trim_end_matches(".md.j2")
    }

    /// From the short name.
    pub fn parse(s: &str) -> Option<Document> {
        Document::ALL.into_iter().find(|d| d.name() == s)
    }

    fn builtin(self) -> &'static str {
        match self {
            Document::FirstConversation => include_str!("templates/forste-samtale.md.j2"),
            Document::PupilConversation => include_str!("templates/elevsamtale.md.j2"),
            Document::AgendaPhase3 => include_str!("templates/dagsorden-fase3.md.j2"),
            Document::AgendaPhase4 => include_str!("templates/dagsorden-fase4.md.j2"),
            Document::Referat => include_str!("templates/referat.md.j2"),
            Document::Samarbeidsavtale => include_str!("templates/samarbeidsavtale.md.j2"),
            Document::Evaluering => include_str!("templates/evaluering.md.j2"),
            Document::Overforing => include_str!("templates/overforing.md.j2"),
            Document::DigestTeacher => include_str!("templates/oversikt-kontaktlaerer.md.j2"),
            Document::DigestSchool => include_str!("templates/oversikt-skole.md.j2"),
            Document::Notice => include_str!("templates/melding.md.j2"),
        }
    }
}

/// One rendering in the three forms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    /// Markdown, for archiving.
    pub markdown: String,
    /// HTML for Matrix's `formatted_body`.
    pub html: String,
    /// Plain text for Matrix's `body`.
    pub plain: String,
}

/// The templates, built in or overridden.
#[derive(Debug, Clone)]
pub struct Renderer {
    env: Environment<'static>,
}

impl Renderer {
    /// The built-in templates.
    pub fn builtin() -> Result<Renderer, RenderError> {
        Renderer::with_overrides(None)
    }

    /// The built-in templates, with any file of the same name in `dir` taking
    /// precedence. Unknown files in `dir` are an error, so a typo is not
    /// silently ignored.
    pub fn with_overrides(dir: Option<&Path>) -> Result<Renderer, RenderError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(true);
        env.add_filter("antall", plural::filter);
        for doc in Document::ALL {
            let mut source = doc.builtin().to_string();
            if let Some(dir) = dir {
                let path = dir.join(doc.file());
                if path.exists() {
                    source = std::fs::read_to_string(&path).map_err(|e| RenderError::Directory {
                        path: path.display().to_string(),
                        message: e.to_string(),
                    })?;
                }
            }
            env.add_template_owned(doc.file(), source)
                .map_err(|e| template_error(doc.file(), &e))?;
        }
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir).map_err(|e| RenderError::Directory {
                path: dir.display().to_string(),
                message: e.to_string(),
            })?;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".md.j2") && !Document::ALL.iter().any(|d| d.file() == name) {
                    return Err(RenderError::Unknown(name));
                }
            }
        }
        Ok(Renderer { env })
    }

    /// Renders `doc` with `context` to Markdown, HTML and plain text.
    pub fn render<S: Serialize>(&self, doc: Document, context: &S) -> Result<Rendered, RenderError> {
        let template = self
            .env
            .get_template(doc.file())
            .map_err(|e| template_error(doc.file(), &e))?;
        let markdown = template.render(context).map_err(|e| template_error(doc.file(), &e))?;
        let markdown = markdown::tidy(&markdown);
        Ok(Rendered {
            html: markdown::to_html(&markdown),
            plain: markdown::to_plain(&markdown),
            markdown,
        })
    }
}

fn template_error(name: &str, e: &minijinja::Error) -> RenderError {
    let mut message = e.to_string();
    if let Some(line) = e.line() {
        message = format!("linje {line}: {message}");
    }
    RenderError::Template {
        name: name.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests;
