//! The streaming XML engine shared by the XML adapters.
//!
//! A file is read event by event (quick-xml) and only the element currently
//! being collected as a record is held in memory, so a file of any size runs
//! in flat memory. Safety first: a DOCTYPE is refused outright (no DTD means
//! no entity definitions, so neither "billion laughs" nor XXE can happen),
//! only the five predefined entities and character references are accepted,
//! and a single record is capped in size and depth.
//!
//! A fault (malformed or truncated input) ends the stream with an
//! [`XmlError`] naming `location:line:column`; every record before the fault
//! has already been delivered.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use std::collections::VecDeque;
use std::io::{self, BufRead};

/// Bytes of text and markup one record may hold.
const MAX_RECORD_BYTES: usize = 1 << 20;
/// Nesting depth inside one record.
const MAX_RECORD_DEPTH: usize = 32;
// [`RecordLog`] keeps a bit per open element of a record.
const _: () = assert!(MAX_RECORD_DEPTH < 64);
/// Nesting depth of the document.
const MAX_DEPTH: usize = 256;
/// Newline offsets kept (at least) before the read position, to turn an
/// error's byte offset into a line.
const NEWLINE_MEMORY: usize = 8192;
/// How far ahead of the read position newlines are looked for: the buffer is
/// searched in pieces of this size rather than event by event.
const NEWLINE_SCAN_AHEAD: usize = 16 << 10;

/// An XML element collected as (part of) a record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// Local name, without namespace prefix.
    pub name: String,
    /// Attributes by local name, in document order.
    pub attributes: Vec<(String, String)>,
    /// The element's own text, entity references resolved and trimmed.
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// 1-based line of the start tag of a record element (0 for the
    /// elements inside a record: positions are looked up for records only).
    pub line: u64,
    /// 1-based byte column of the start tag (0 inside a record, like `line`).
    pub column: u64,
}

impl Element {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The element at a `/`-separated path of child names below this one.
    pub fn at(&self, path: &str) -> Option<&Element> {
        path.split('/')
            .filter(|p| !p.is_empty())
            .try_fold(self, |e, name| e.child(name))
    }

    /// The non-empty text at `path` (see [`Element::at`]).
    pub fn text_at(&self, path: &str) -> Option<&str> {
        self.at(path).map(|e| e.text.as_str()).filter(|t| !t.is_empty())
    }

    /// The first descendant (depth first) named `name`, for references whose
    /// wrapping differs between standard versions.
    pub fn find(&self, name: &str) -> Option<&Element> {
        for c in &self.children {
            if c.name == name {
                return Some(c);
            }
            if let Some(found) = c.find(name) {
                return Some(found);
            }
        }
        None
    }

    /// An attribute's value by local name.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The element written back as compact XML, for the quarantine's `raw`.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write_xml(&mut out);
        out
    }

    fn write_xml(&self, out: &mut String) {
        out.push('<');
        out.push_str(&self.name);
        for (n, v) in &self.attributes {
            out.push_str(&format!(" {n}=\"{}\"", escape(v)));
        }
        out.push('>');
        out.push_str(&escape(&self.text));
        for c in &self.children {
            c.write_xml(out);
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

/// Escapes text for XML content and attribute values. Tab, line feed and
/// carriage return are written as character references: a reader normalises
/// them to spaces in attribute values (and CR LF to LF in text), while a
/// reference survives as the character itself.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'', '\t', '\n', '\r']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out.into()
}

/// Whether `s` holds a control character that XML 1.0 does not allow
/// (U+0000–U+001F other than tab, line feed and carriage return), raw or
/// as a character reference.
#[inline]
fn has_forbidden_control(s: &str) -> bool {
    // Without an early exit the loop is vectorised; every piece of
    // indentation holds a line feed, so the usual text is read whole anyway.
    s.bytes().fold(false, |found, b| {
        found | ((b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r'))
    })
}

/// Why reading stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlFault {
    /// The document has a DOCTYPE; DTDs (and with them entity definitions)
    /// are refused to rule out entity expansion attacks and external entities.
    #[error("DOCTYPE er ikke tillatt (DTD-er og entiteter avvises av sikkerhetshensyn)")]
    Doctype,
    /// An entity other than the five predefined ones.
    #[error("ukjent entitet «&{0};» (bare &amp; &lt; &gt; &quot; &apos; og tegnreferanser er tillatt)")]
    Entity(String),
    /// The XML is not well-formed.
    #[error("ugyldig XML: {0}")]
    Malformed(String),
    /// The file ends inside an element.
    #[error("filen slutter midt i elementet <{0}> (avkortet fil?)")]
    Truncated(String),
    /// One record is larger or deeper than any sane source sends.
    #[error("elementet <{0}> er for stort eller for dypt nøstet")]
    TooLarge(String),
    /// Reading failed.
    #[error("lesefeil: {0}")]
    Io(String),
}

/// A fault with its place in the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}:{line}:{column}: {fault}")]
pub struct XmlError {
    /// The input's name (usually the file name).
    pub location: String,
    /// 1-based line.
    pub line: u64,
    /// 1-based byte column.
    pub column: u64,
    /// What is wrong.
    pub fault: XmlFault,
}

impl From<XmlError> for io::Error {
    fn from(e: XmlError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// A `BufRead` wrapper that remembers where recent lines start, so byte
/// offsets reported by quick-xml become `line:column`.
///
/// Newlines are looked for in the reader's buffer a piece at a time, up to
/// [`NEWLINE_SCAN_AHEAD`] bytes ahead of what has been consumed, rather than
/// in every consumed piece; the starts of the last [`NEWLINE_MEMORY`] lines
/// before the read position are kept, and those of the lines searched ahead.
struct LineTracker<R> {
    inner: R,
    consumed: u64,
    /// Where the search for newlines has got to (never behind `consumed`).
    scanned: u64,
    lines_before_memory: u64,
    /// Offsets just after recent newlines (the start of each line).
    starts: VecDeque<u64>,
    /// Where the event being read started: quick-xml copies a whole event
    /// into memory, so one event is capped (a gigabyte of text between two
    /// tags would otherwise be held whole).
    event_start: u64,
}

impl<R> LineTracker<R> {
    fn new(inner: R) -> LineTracker<R> {
        LineTracker {
            inner,
            consumed: 0,
            scanned: 0,
            lines_before_memory: 0,
            starts: Default::default(),
            event_start: 0,
        }
    }

    fn position(&self, offset: u64) -> (u64, u64) {
        // Lines whose start is at or before `offset`.
        let idx = self.starts.partition_point(|&s| s <= offset);
        let line_start = if idx == 0 {
            if self.lines_before_memory == 0 {
                0
            } else {
                // Older than what is remembered; the best we can say.
                return (self.lines_before_memory + 1, 1);
            }
        } else {
            self.starts[idx - 1]
        };
        (self.lines_before_memory + idx as u64 + 1, offset - line_start + 1)
    }
}

/// Remembers the line starts after the newlines in `bytes`, which begin at
/// offset `at`, keeping at most `cap` line starts.
fn remember_lines(starts: &mut VecDeque<u64>, lines_before: &mut u64, at: u64, bytes: &[u8], cap: usize) {
    for i in memchr::memchr_iter(b'\n', bytes) {
        if starts.len() == cap {
            starts.pop_front();
            *lines_before += 1;
        }
        starts.push_back(at + i as u64 + 1);
    }
}

impl<R: io::Read> io::Read for LineTracker<R> {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        // quick-xml reads through BufRead only.
        Err(io::Error::other("LineTracker is read through BufRead"))
    }
}

impl<R: BufRead> LineTracker<R> {
    /// Forgets the lines before the last `NEWLINE_MEMORY` consumed ones and
    /// looks for newlines further ahead in `buf` (the inner reader's buffer,
    /// of which `ahead` bytes have been searched); returns how far the
    /// search has got.
    #[cold]
    #[inline(never)]
    fn scan_ahead(starts: &mut VecDeque<u64>, lines_before: &mut u64, consumed: u64, ahead: usize, buf: &[u8]) -> u64 {
        let past = starts.partition_point(|&s| s <= consumed);
        let forget = past.saturating_sub(NEWLINE_MEMORY);
        starts.drain(..forget);
        *lines_before += forget as u64;
        let end = buf.len().min(NEWLINE_SCAN_AHEAD);
        let cap = NEWLINE_MEMORY + NEWLINE_SCAN_AHEAD;
        remember_lines(starts, lines_before, consumed + ahead as u64, &buf[ahead..end], cap);
        consumed + end as u64
    }

    /// Looks for newlines in what is being consumed beyond the search (a
    /// long event consumed at once); all remembered lines are then behind
    /// the read position, so the last `NEWLINE_MEMORY` are kept.
    #[cold]
    #[inline(never)]
    fn scan_consumed(&mut self, amt: usize) {
        if let Ok(buf) = self.inner.fill_buf() {
            let ahead = (self.scanned - self.consumed) as usize;
            let n = amt.min(buf.len());
            if ahead < n {
                remember_lines(
                    &mut self.starts,
                    &mut self.lines_before_memory,
                    self.consumed + ahead as u64,
                    &buf[ahead..n],
                    NEWLINE_MEMORY,
                );
            }
        }
        while self.starts.len() > NEWLINE_MEMORY {
            self.starts.pop_front();
            self.lines_before_memory += 1;
        }
    }
}

#[cold]
fn event_too_large() -> io::Error {
    io::Error::other(format!("én XML-hendelse er større enn {} MiB", MAX_RECORD_BYTES >> 20))
}

impl<R: BufRead> BufRead for LineTracker<R> {
    #[inline]
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.consumed - self.event_start > MAX_RECORD_BYTES as u64 {
            return Err(event_too_large());
        }
        let buf = self.inner.fill_buf()?;
        let ahead = (self.scanned - self.consumed) as usize;
        if ahead < buf.len() && ahead < NEWLINE_SCAN_AHEAD / 2 {
            self.scanned = Self::scan_ahead(
                &mut self.starts,
                &mut self.lines_before_memory,
                self.consumed,
                ahead,
                buf,
            );
        }
        Ok(buf)
    }

    #[inline]
    fn consume(&mut self, amt: usize) {
        let end = self.consumed + amt as u64;
        if end > self.scanned {
            self.scan_consumed(amt);
            self.scanned = end;
        }
        self.consumed = end;
        self.inner.consume(amt);
    }
}

/// Receives one record as borrowed pieces in document order, so a caller
/// can pick out what it needs without a tree being built. Every check
/// (DOCTYPE, entities, size and depth limits, well-formedness) is made by
/// the engine before a piece is handed on.
///
/// A record is complete only when [`XmlRecords::next_with`] returns its
/// position; after an error, whatever the visitor saw of the failing record
/// is to be dropped. Depth 0 is the record element itself, so a visitor
/// starts afresh at every `start` of depth 0.
pub trait RecordVisitor {
    /// An element opens; `name` is its local name (without namespace prefix).
    fn start(&mut self, name: &[u8], depth: usize);
    /// An attribute of the element that opened last: local name and value,
    /// references resolved.
    fn attribute(&mut self, name: &[u8], value: &str) {
        let _ = (name, value);
    }
    /// A piece of the text of the innermost open element, untrimmed.
    /// An element's text may come in several pieces (around references,
    /// comments, CDATA sections and child elements).
    fn text(&mut self, text: &str);
    /// The element opened at `depth` ends.
    fn end(&mut self, depth: usize);
}

/// Two visitors fed the same record.
impl<A: RecordVisitor, B: RecordVisitor> RecordVisitor for (A, B) {
    fn start(&mut self, name: &[u8], depth: usize) {
        self.0.start(name, depth);
        self.1.start(name, depth);
    }

    fn attribute(&mut self, name: &[u8], value: &str) {
        self.0.attribute(name, value);
        self.1.attribute(name, value);
    }

    fn text(&mut self, text: &str) {
        self.0.text(text);
        self.1.text(text);
    }

    fn end(&mut self, depth: usize) {
        self.0.end(depth);
        self.1.end(depth);
    }
}

/// Where a record's start tag is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: u64,
    /// 1-based byte column.
    pub column: u64,
}

/// The visitor that builds a record's [`Element`] tree.
#[derive(Debug, Default)]
struct TreeBuilder {
    stack: Vec<Element>,
    done: Option<Element>,
}

impl RecordVisitor for TreeBuilder {
    fn start(&mut self, name: &[u8], depth: usize) {
        if depth == 0 {
            self.stack.clear();
            self.done = None;
        }
        self.stack.push(Element {
            name: String::from_utf8_lossy(name).into_owned(),
            ..Element::default()
        });
    }

    fn attribute(&mut self, name: &[u8], value: &str) {
        if let Some(top) = self.stack.last_mut() {
            top.attributes
                .push((String::from_utf8_lossy(name).into_owned(), value.to_string()));
        }
    }

    fn text(&mut self, text: &str) {
        if let Some(top) = self.stack.last_mut() {
            // Leading whitespace is trimmed when the element ends anyway; not
            // keeping it spares an allocation for every indented parent.
            if top.text.is_empty() && text.bytes().all(|b| b.is_ascii_whitespace()) {
                return;
            }
            top.text.push_str(text);
        }
    }

    fn end(&mut self, _depth: usize) {
        let mut done = self.stack.pop().unwrap_or_default();
        trim_in_place(&mut done.text);
        match self.stack.last_mut() {
            Some(parent) => parent.children.push(done),
            None => self.done = Some(done),
        }
    }
}

/// A compact log of one record's pieces, reused from record to record: a
/// visitor that keeps what it is given so that the record's [`Element`] can
/// be rebuilt when it is needed after all (say, for the quarantine's `raw`
/// of a rejected record), without building a tree for every record.
#[derive(Debug, Clone, Default)]
pub struct RecordLog {
    /// Tagged entries: a tag byte, then length-prefixed byte strings.
    bytes: Vec<u8>,
    /// Elements open (the record's own is the first).
    open: usize,
    /// Per open element (bit = depth): whether it has logged text. Until
    /// it has, a piece of white space is not logged: [`TreeBuilder`] drops
    /// it anyway (leading white space is trimmed), and indentation is most
    /// of an indented record's text.
    texted: u64,
}

const LOG_START: u8 = 0;
const LOG_ATTRIBUTE: u8 = 1;
const LOG_TEXT: u8 = 2;
const LOG_END: u8 = 3;

impl RecordLog {
    fn push_bytes(&mut self, b: &[u8]) {
        // A record is capped at MAX_RECORD_BYTES, so a piece fits in u32.
        self.bytes.extend_from_slice(&(b.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(b);
    }

    /// The logged record as a tree (its `line` and `column` are 0).
    pub fn element(&self) -> Element {
        fn take<'a>(bytes: &'a [u8], at: &mut usize) -> &'a [u8] {
            let len = bytes
                .get(*at..*at + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
            let piece = bytes.get(*at + 4..*at + 4 + len).unwrap_or_default();
            *at += 4 + len;
            piece
        }
        let mut tree = TreeBuilder::default();
        let mut depth = 0usize;
        let mut at = 0usize;
        while let Some(&tag) = self.bytes.get(at) {
            at += 1;
            match tag {
                LOG_START => {
                    tree.start(take(&self.bytes, &mut at), depth);
                    depth += 1;
                }
                LOG_ATTRIBUTE => {
                    let name = take(&self.bytes, &mut at);
                    let value = take(&self.bytes, &mut at);
                    tree.attribute(name, &String::from_utf8_lossy(value));
                }
                LOG_TEXT => tree.text(&String::from_utf8_lossy(take(&self.bytes, &mut at))),
                _ => {
                    depth = depth.saturating_sub(1);
                    tree.end(depth);
                }
            }
        }
        // A complete record has closed its root; anything else is a logic error.
        while !tree.stack.is_empty() {
            depth = depth.saturating_sub(1);
            tree.end(depth);
        }
        tree.done.unwrap_or_default()
    }
}

impl RecordVisitor for RecordLog {
    fn start(&mut self, name: &[u8], depth: usize) {
        if depth == 0 {
            self.bytes.clear();
            self.texted = 0;
        }
        self.open = depth + 1;
        // The engine refuses records deeper than MAX_RECORD_DEPTH (32).
        self.texted &= !(1u64 << depth.min(63));
        self.bytes.push(LOG_START);
        self.push_bytes(name);
    }

    fn attribute(&mut self, name: &[u8], value: &str) {
        self.bytes.push(LOG_ATTRIBUTE);
        self.push_bytes(name);
        self.push_bytes(value.as_bytes());
    }

    fn text(&mut self, text: &str) {
        let bit = 1u64 << self.open.saturating_sub(1).min(63);
        if self.texted & bit == 0 {
            if text.bytes().all(|b| b.is_ascii_whitespace()) {
                return;
            }
            self.texted |= bit;
        }
        self.bytes.push(LOG_TEXT);
        self.push_bytes(text.as_bytes());
    }

    fn end(&mut self, depth: usize) {
        self.open = depth;
        self.bytes.push(LOG_END);
    }
}

/// Streams the elements named in `records` out of an XML document, each as a
/// small tree (as an iterator) or piece by piece to a [`RecordVisitor`]
/// ([`XmlRecords::next_with`]). Elements outside records are read and dropped.
pub struct XmlRecords<R> {
    reader: Reader<LineTracker<R>>,
    location: String,
    record_names: Vec<String>,
    buf: Vec<u8>,
    /// Names of the open elements outside the record being collected.
    open: Vec<String>,
    /// Local names of the open elements of the record being read, one after
    /// the other; `record_ends` has where each ends.
    record_open: Vec<u8>,
    record_ends: Vec<usize>,
    tree: TreeBuilder,
    done: bool,
}

impl<R: BufRead> XmlRecords<R> {
    /// Reads `input`, delivering every element whose local name is in
    /// `record_names` (at any depth; records do not nest). `location` names
    /// the input in errors.
    pub fn new(input: R, location: impl Into<String>, record_names: &[&str]) -> XmlRecords<R> {
        let mut reader = Reader::from_reader(LineTracker::new(input));
        let config = reader.config_mut();
        // Whitespace is kept: text around entity references arrives in
        // pieces, and trimming each piece would eat the spaces between them.
        // Element text is trimmed once the element is complete.
        config.trim_text(false);
        config.check_end_names = true;
        config.expand_empty_elements = false;
        XmlRecords {
            reader,
            location: location.into(),
            record_names: record_names.iter().map(|n| n.to_string()).collect(),
            buf: Vec::with_capacity(4096),
            open: Vec::new(),
            record_open: Vec::with_capacity(256),
            record_ends: Vec::with_capacity(MAX_RECORD_DEPTH + 1),
            tree: TreeBuilder::default(),
            done: false,
        }
    }

    /// The input's name.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Hands the next record to `visitor` and returns where it starts;
    /// `None` at the end of the input. A fault (`Some(Err)`) ends the stream,
    /// like the end of input does.
    pub fn next_with<V: RecordVisitor>(&mut self, visitor: &mut V) -> Option<Result<Position, XmlError>> {
        if self.done {
            return None;
        }
        match self.next_record(visitor) {
            Ok(Some(p)) => Some(Ok(p)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                // A fault ends the stream: the parser's state is unknown after it.
                self.done = true;
                Some(Err(e))
            }
        }
    }

    /// The name of the innermost open element of the record being read.
    fn innermost(&self) -> String {
        let end = self.record_ends.last().copied().unwrap_or(0);
        let start = match self.record_ends.len() {
            0 | 1 => 0,
            n => self.record_ends[n - 2],
        };
        String::from_utf8_lossy(&self.record_open[start..end]).into_owned()
    }

    /// Reads the rest of the record whose start tag was just read, up to and
    /// including its end tag.
    fn visit_record<V: RecordVisitor>(&mut self, v: &mut V) -> Result<(), XmlError> {
        let mut size = 0usize;
        loop {
            self.buf.clear();
            let before = self.reader.buffer_position();
            self.reader.get_mut().event_start = before;
            // The event is matched where it was returned, not moved: a copy
            // right after the call stalls on the stores just made.
            let read = self.reader.read_event_into(&mut self.buf);
            let event = match read {
                Ok(ref e) => e,
                Err(e) => {
                    // Name the innermost element the fault is in.
                    let innermost = self.innermost();
                    return Err(quick_xml_error(&self.reader, &self.location, Some(&innermost), e));
                }
            };
            size += (self.reader.buffer_position() - before) as usize;
            let depth = self.record_ends.len();
            if size > MAX_RECORD_BYTES || depth > MAX_RECORD_DEPTH {
                let end = self.record_ends.first().copied().unwrap_or(0);
                let name = String::from_utf8_lossy(&self.record_open[..end]).into_owned();
                return Err(error_at(&self.reader, &self.location, before, XmlFault::TooLarge(name)));
            }
            match event {
                Event::Start(s) => {
                    let name = start_element(&self.reader, &self.location, v, s, before, depth)?;
                    self.record_open.extend_from_slice(name);
                    self.record_ends.push(self.record_open.len());
                }
                Event::Empty(s) => {
                    start_element(&self.reader, &self.location, v, s, before, depth)?;
                    v.end(depth);
                }
                Event::End(_) => {
                    self.record_ends.pop();
                    let depth = self.record_ends.len();
                    self.record_open.truncate(self.record_ends.last().copied().unwrap_or(0));
                    v.end(depth);
                    if depth == 0 {
                        return Ok(());
                    }
                }
                Event::Text(t) => {
                    let text = t.decode().map_err(|e| {
                        error_at(&self.reader, &self.location, before, XmlFault::Malformed(e.to_string()))
                    })?;
                    if has_forbidden_control(&text) {
                        return Err(error_at(&self.reader, &self.location, before, forbidden_control()));
                    }
                    v.text(&text);
                }
                Event::CData(t) => {
                    let text = t.decode().map_err(|e| {
                        error_at(&self.reader, &self.location, before, XmlFault::Malformed(e.to_string()))
                    })?;
                    if has_forbidden_control(&text) {
                        return Err(error_at(&self.reader, &self.location, before, forbidden_control()));
                    }
                    v.text(&text);
                }
                Event::GeneralRef(r) => {
                    let c = resolve(&self.reader, &self.location, r, before)?;
                    v.text(c.encode_utf8(&mut [0u8; 4]));
                }
                Event::DocType(_) => return Err(error_at(&self.reader, &self.location, before, XmlFault::Doctype)),
                Event::Eof => {
                    let name = self.innermost();
                    let end = self.reader.buffer_position();
                    return Err(error_at(&self.reader, &self.location, end, XmlFault::Truncated(name)));
                }
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            }
        }
    }

    fn next_record<V: RecordVisitor>(&mut self, v: &mut V) -> Result<Option<Position>, XmlError> {
        loop {
            self.buf.clear();
            let before = self.reader.buffer_position();
            self.reader.get_mut().event_start = before;
            let read = self.reader.read_event_into(&mut self.buf);
            let event = match read {
                Ok(ref e) => e,
                Err(e) => {
                    let innermost = self.open.last().map(String::as_str);
                    return Err(quick_xml_error(&self.reader, &self.location, innermost, e));
                }
            };
            let (s, empty) = match event {
                Event::Start(s) => (s, false),
                Event::Empty(s) => (s, true),
                Event::End(_) => {
                    self.open.pop();
                    continue;
                }
                Event::GeneralRef(r) => {
                    resolve(&self.reader, &self.location, r, before)?;
                    continue;
                }
                Event::DocType(_) => return Err(error_at(&self.reader, &self.location, before, XmlFault::Doctype)),
                Event::Eof => {
                    if let Some(name) = self.open.last() {
                        let end = self.reader.buffer_position();
                        return Err(error_at(
                            &self.reader,
                            &self.location,
                            end,
                            XmlFault::Truncated(name.clone()),
                        ));
                    }
                    return Ok(None);
                }
                Event::Text(_) | Event::CData(_) | Event::Comment(_) | Event::Decl(_) | Event::PI(_) => continue,
            };
            let name = s.local_name();
            if self.record_names.iter().any(|n| n.as_bytes() == name.as_ref()) {
                let (line, column) = self.reader.get_ref().position(before);
                start_element(&self.reader, &self.location, v, s, before, 0)?;
                let position = Position { line, column };
                if empty {
                    v.end(0);
                    return Ok(Some(position));
                }
                self.record_open.clear();
                self.record_open.extend_from_slice(name.as_ref());
                self.record_ends.clear();
                self.record_ends.push(self.record_open.len());
                self.visit_record(v)?;
                return Ok(Some(position));
            }
            if !empty {
                self.open.push(String::from_utf8_lossy(name.as_ref()).into_owned());
                if self.open.len() > MAX_DEPTH {
                    let name = self.open.last().cloned().unwrap_or_default();
                    return Err(error_at(&self.reader, &self.location, before, XmlFault::TooLarge(name)));
                }
            }
        }
    }
}

fn quick_xml_error<R>(
    reader: &Reader<LineTracker<R>>,
    location: &str,
    innermost: Option<&str>,
    e: quick_xml::Error,
) -> XmlError {
    let fault = match e {
        quick_xml::Error::Io(io) => XmlFault::Io(io.to_string()),
        quick_xml::Error::Syntax(s) => match innermost {
            Some(name) if matches!(s, quick_xml::errors::SyntaxError::UnclosedTag) => {
                XmlFault::Truncated(name.to_string())
            }
            _ => XmlFault::Malformed(s.to_string()),
        },
        other => XmlFault::Malformed(other.to_string()),
    };
    error_at(reader, location, reader.error_position(), fault)
}

fn error_at<R>(reader: &Reader<LineTracker<R>>, location: &str, offset: u64, fault: XmlFault) -> XmlError {
    let (line, column) = reader.get_ref().position(offset);
    XmlError {
        location: location.to_string(),
        line,
        column,
        fault,
    }
}

/// The fault for a control character XML does not allow.
fn forbidden_control() -> XmlFault {
    XmlFault::Malformed("kontrolltegn som XML ikke tillater (U+0000–U+001F utenom tab og linjeskift)".into())
}

/// Resolves a reference: character references and the five predefined
/// entities only. Anything else would need a DTD, which is refused.
fn resolve<R>(
    reader: &Reader<LineTracker<R>>,
    location: &str,
    r: &quick_xml::events::BytesRef<'_>,
    at: u64,
) -> Result<char, XmlError> {
    if r.is_char_ref() {
        return match r.resolve_char_ref() {
            Ok(Some(c)) if !has_forbidden_control(c.encode_utf8(&mut [0u8; 4])) => Ok(c),
            _ => Err(error_at(
                reader,
                location,
                at,
                XmlFault::Malformed(format!("ugyldig tegnreferanse «&{};»", String::from_utf8_lossy(r))),
            )),
        };
    }
    match &**r {
        b"amp" => Ok('&'),
        b"lt" => Ok('<'),
        b"gt" => Ok('>'),
        b"quot" => Ok('"'),
        b"apos" => Ok('\''),
        other => Err(error_at(
            reader,
            location,
            at,
            XmlFault::Entity(String::from_utf8_lossy(other).into_owned()),
        )),
    }
}

/// The local part of a qualified name (what follows its `:`) if the name
/// is namespace-well-formed (Namespaces in XML 1.0): UTF-8, not empty, and
/// at most one `:` with a name on either side. Names like `a:b:c` or `:x`
/// would lose their meaning when reduced to the local part (two different
/// names read as one), so they are refused. One pass finds both.
#[inline]
fn local_name(qname: &[u8]) -> Option<&[u8]> {
    qualified_name_colon(qname).map(|colon| match colon {
        Some(i) => &qname[i + 1..],
        None => qname,
    })
}

/// Whether a qualified name is namespace-well-formed (see [`local_name`]).
#[cfg(test)]
fn namespace_well_formed(qname: &[u8]) -> bool {
    qualified_name_colon(qname).is_some()
}

/// `Some(where the colon is)` for a namespace-well-formed name, `None`
/// for any other.
#[inline]
fn qualified_name_colon(qname: &[u8]) -> Option<Option<usize>> {
    // One pass over the name, each byte classified by a table (names are
    // checked at every start tag and attribute, so this is a hot loop).
    let mut colon = None;
    let mut ascii = true;
    for (i, &b) in qname.iter().enumerate() {
        if NAME_BYTES[usize::from(b)] == 0 {
            if b == b':' && colon.is_none() {
                colon = Some(i);
                continue;
            }
            return None;
        }
        ascii &= b < 0x80;
    }
    let starts = |i: usize| qname.get(i).is_some_and(|&b| NAME_BYTES[usize::from(b)] == NAME_START);
    let shape = match colon {
        None => starts(0),
        Some(i) => i > 0 && starts(0) && starts(i + 1),
    };
    // Names are UTF-8 too: two names that differ only in bytes that are not
    // would read as the same replacement characters.
    (shape && (ascii || std::str::from_utf8(qname).is_ok())).then_some(colon)
}

/// A byte that may start a name part (see [`NAME_BYTES`]).
const NAME_START: u8 = 2;

/// The bytes of one side of a qualified name: XML's Name production without
/// the colon, checked exactly for ASCII (a letter or `_` first, then
/// letters, digits, `.`, `-`, `_`); bytes of characters beyond ASCII are let
/// through. 0: not in a name, 1: in a name, [`NAME_START`]: also first.
/// quick-xml is lenient here, and a name with a quote, `<` or a space in it
/// could not be written back (found by fuzzing).
const NAME_BYTES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        t[b] = if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            NAME_START
        } else if c.is_ascii_digit() || c == b'.' || c == b'-' {
            1
        } else {
            0
        };
        b += 1;
    }
    t
};

/// The fault of a name that is not namespace-well-formed; the name itself
/// is not repeated (it is input).
fn bad_name<R>(reader: &Reader<LineTracker<R>>, location: &str, at: u64) -> XmlError {
    error_at(
        reader,
        location,
        at,
        XmlFault::Malformed(
            "et element- eller attributtnavn er ikke et gyldig navn (høyst ett kolon, med navn på begge sider)".into(),
        ),
    )
}

/// Hands a start tag and its attributes to `v`, each attribute checked
/// first; returns the element's local name.
fn start_element<'s, R, V: RecordVisitor>(
    reader: &Reader<LineTracker<R>>,
    location: &str,
    v: &mut V,
    s: &'s BytesStart<'_>,
    at: u64,
    depth: usize,
) -> Result<&'s [u8], XmlError> {
    let Some(name) = local_name(s.name().into_inner()) else {
        return Err(bad_name(reader, location, at));
    };
    v.start(name, depth);
    if s.attributes_raw().is_empty() {
        return Ok(name);
    }
    // Local names seen: two attributes of one element with the same local
    // name (`a:x` and `b:x`) would read as one, so they are refused. A list
    // for the usual handful, a set past that (10,000 attributes stay linear).
    let mut seen: Vec<&[u8]> = Vec::new();
    let mut many: Option<std::collections::HashSet<&[u8]>> = None;
    for a in s.attributes() {
        let a = a.map_err(|e| error_at(reader, location, at, XmlFault::Malformed(e.to_string())))?;
        let Some(local) = local_name(a.key.into_inner()) else {
            return Err(bad_name(reader, location, at));
        };
        let repeated = match &mut many {
            Some(set) => !set.insert(local),
            None if seen.len() < 16 => {
                let r = seen.contains(&local);
                seen.push(local);
                r
            }
            None => {
                let mut set: std::collections::HashSet<&[u8]> = seen.drain(..).collect();
                let r = !set.insert(local);
                many = Some(set);
                r
            }
        };
        if repeated {
            return Err(error_at(
                reader,
                location,
                at,
                XmlFault::Malformed("to attributter i samme element har samme navn".into()),
            ));
        }
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| match e {
                quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(_, name)) => {
                    error_at(reader, location, at, XmlFault::Entity(name))
                }
                other => error_at(reader, location, at, XmlFault::Malformed(other.to_string())),
            })?;
        if has_forbidden_control(&value) {
            return Err(error_at(reader, location, at, forbidden_control()));
        }
        v.attribute(local, &value);
    }
    Ok(name)
}

fn trim_in_place(s: &mut String) {
    let end = s.trim_end().len();
    s.truncate(end);
    let start = s.len() - s.trim_start().len();
    if start > 0 {
        s.drain(..start);
    }
}

impl<R: BufRead> Iterator for XmlRecords<R> {
    type Item = Result<Element, XmlError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut tree = std::mem::take(&mut self.tree);
        let next = self.next_with(&mut tree).map(|r| {
            r.map(|p| Element {
                line: p.line,
                column: p.column,
                ..tree.done.take().unwrap_or_default()
            })
        });
        self.tree = tree;
        next
    }
}

/// Counts the events of a document without building anything: the baseline
/// the benchmark compares the adapters with. This is quick-xml alone, with
/// none of the adapters' line tracking or limits (DOCTYPE is still refused);
/// an error names the byte offset.
pub fn scan_events(input: impl BufRead, location: &str) -> io::Result<u64> {
    let mut reader = Reader::from_reader(input);
    let mut buf = Vec::with_capacity(4096);
    let mut n = 0u64;
    loop {
        buf.clear();
        let fault = match reader.read_event_into(&mut buf) {
            Ok(Event::Eof) => return Ok(n),
            Ok(Event::DocType(_)) => XmlFault::Doctype,
            Ok(_) => {
                n += 1;
                continue;
            }
            Err(e) => XmlFault::Malformed(e.to_string()),
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{location}: byte {}: {fault}", reader.buffer_position()),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(xml: &str) -> Vec<Result<Element, XmlError>> {
        XmlRecords::new(xml.as_bytes(), "t.xml", &["Rec"]).collect()
    }

    #[test]
    fn records_are_collected_with_text_and_positions() {
        let xml = "<?xml version=\"1.0\"?>\n<Root xmlns=\"urn:x\">\n  <Rec a=\"1 &amp; 2\"><A>x &lt; y</A><B><C>c</C></B><D/></Rec>\n  <Other><Rec><A>2</A></Rec></Other>\n</Root>\n";
        let got = all(xml);
        assert_eq!(got.len(), 2);
        let r = got[0].as_ref().unwrap();
        assert_eq!((r.line, r.column), (3, 3));
        assert_eq!(r.attribute("a"), Some("1 & 2"));
        assert_eq!(r.text_at("A"), Some("x < y"));
        assert_eq!(r.text_at("B/C"), Some("c"));
        assert!(r.child("D").is_some());
        assert_eq!(r.find("C").map(|c| c.text.as_str()), Some("c"));
        assert_eq!(got[1].as_ref().unwrap().text_at("A"), Some("2"));
    }

    #[test]
    fn billion_laughs_is_refused_before_any_expansion() {
        let xml = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Root><Rec><A>&lol3;</A></Rec></Root>"#;
        let got = all(xml);
        assert_eq!(got.len(), 1);
        let e = got[0].as_ref().unwrap_err();
        assert_eq!(e.fault, XmlFault::Doctype);
        assert_eq!(e.line, 2);
    }

    #[test]
    fn external_entity_is_refused() {
        let xml = "<?xml version=\"1.0\"?>\n<!DOCTYPE r [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n<Root><Rec><A>&xxe;</A></Rec></Root>";
        assert_eq!(all(xml)[0].as_ref().unwrap_err().fault, XmlFault::Doctype);
        // Without a DOCTYPE, an undeclared entity is refused too.
        let xml = "<Root>\n<Rec><A>ok</A></Rec>\n<Rec><A>&xxe;</A></Rec></Root>";
        let got = all(xml);
        assert!(got[0].is_ok());
        let e = got[1].as_ref().unwrap_err();
        assert_eq!(e.fault, XmlFault::Entity("xxe".into()));
        assert_eq!(e.line, 3);
        let xml = "<Root><Rec a=\"&xxe;\"/></Root>";
        assert_eq!(all(xml)[0].as_ref().unwrap_err().fault, XmlFault::Entity("xxe".into()));
    }

    #[test]
    fn truncated_file_keeps_records_before_and_names_the_place() {
        let xml = "<Root>\n<Rec><A>1</A></Rec>\n<Rec><A>2</A></Rec>\n<Rec><A>3</";
        let got = all(xml);
        assert_eq!(got.len(), 3);
        assert!(got[0].is_ok() && got[1].is_ok());
        let e = got[2].as_ref().unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.to_string().starts_with("t.xml:4:"), "{e}");

        let xml = "<Root>\n<Rec><A>1</A></Rec>\n<Rec><A>2</A>";
        let got = all(xml);
        assert_eq!(got.len(), 2);
        assert!(matches!(got[1].as_ref().unwrap_err().fault, XmlFault::Truncated(ref n) if n == "Rec"));

        let xml = "<Root>\n<Rec><A>1</A></Rec>\n";
        let got = all(xml);
        assert!(matches!(got[1].as_ref().unwrap_err().fault, XmlFault::Truncated(ref n) if n == "Root"));
    }

    /// Found by the fuzzer: `a:b:c` read as `b:c`, and written back and
    /// read again as `c`, so one record read two ways. Names with more than
    /// one colon, or a colon at either end, are refused.
    #[test]
    fn names_must_be_namespace_well_formed() {
        let good = "<Root><Rec xml:lang=\"no\" a=\"1\" _b.c-d=\"2\"><n:A>x</n:A><Fravær>y</Fravær></Rec></Root>";
        let got = all(good);
        let rec = got[0].as_ref().unwrap();
        assert_eq!(rec.attribute("lang"), Some("no"));
        assert_eq!(rec.text_at("A"), Some("x"));
        for bad in [
            "<Root><Rec a:b:c=\"1\"/></Root>",
            "<Root><Rec :a=\"1\"/></Root>",
            "<Root><Rec a:=\"1\"/></Root>",
            "<Root><Rec><a:b:A>x</a:b:A></Rec></Root>",
            "<Root><Rec><:A>x</:A></Rec></Root>",
            // Two attributes that read as one.
            "<Root><Rec a:x=\"1\" b:x=\"2\"/></Root>",
            "<Root><Rec x=\"1\" b:x=\"2\"/></Root>",
            // Characters no XML name has.
            "<Root><Rec a'b=\"1\"/></Root>",
            "<Root><Rec a|&lt;=\"1\"/></Root>",
            "<Root><Rec 1a=\"1\"/></Root>",
        ] {
            let got = all(bad);
            let e = got[0].as_ref().unwrap_err();
            assert!(matches!(e.fault, XmlFault::Malformed(_)), "{bad}: {e}");
            assert!(!e.to_string().contains("a:b"), "the name is input, not repeated: {e}");
        }
    }

    #[test]
    fn mismatched_end_tag_is_reported_with_line_and_column() {
        let xml = "<Root>\n<Rec><A>1</A></Rec>\n  <Rec><A>2</B></Rec>\n</Root>";
        let got = all(xml);
        assert_eq!(got.len(), 2);
        let e = got[1].as_ref().unwrap_err();
        assert!(matches!(e.fault, XmlFault::Malformed(_)), "{e}");
        assert_eq!((e.line, e.column), (3, 12), "{e}");
    }

    #[test]
    fn huge_record_is_refused() {
        let mut xml = String::from("<Root><Rec>");
        for _ in 0..(MAX_RECORD_BYTES / 10 + 10) {
            xml.push_str("<A>12</A>\n");
        }
        xml.push_str("</Rec></Root>");
        assert!(matches!(
            all(&xml)[0].as_ref().unwrap_err().fault,
            XmlFault::TooLarge(_)
        ));
    }

    #[test]
    fn huge_text_outside_records_is_refused_without_holding_it() {
        let mut xml = String::from("<Root><Rec><A>1</A></Rec><Junk>");
        xml.push_str(&"x".repeat(3 * MAX_RECORD_BYTES));
        xml.push_str("</Junk></Root>");
        // Read like a file: a bounded buffer, refilled as quick-xml consumes it.
        let input = io::BufReader::with_capacity(8192, xml.as_bytes());
        let got: Vec<_> = XmlRecords::new(input, "t.xml", &["Rec"]).collect();
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        let e = got[1].as_ref().unwrap_err();
        assert!(e.to_string().contains("større enn 1 MiB"), "{e}");
    }

    #[test]
    fn line_memory_survives_long_files() {
        let mut xml = String::from("<Root>\n");
        for i in 0..20_000 {
            xml.push_str(&format!("<Rec><A>{i}</A></Rec>\n"));
        }
        xml.push_str("<Rec><A>x</B></Rec></Root>");
        let got = all(&xml);
        assert_eq!(got.len(), 20_001);
        assert_eq!(got[20_000].as_ref().unwrap_err().line, 20_002);
        assert_eq!(got[19_999].as_ref().unwrap().line, 20_001);
    }

    /// Writes down what a visitor is given.
    #[derive(Default)]
    struct Trace(Vec<String>);

    impl RecordVisitor for Trace {
        fn start(&mut self, name: &[u8], depth: usize) {
            if depth == 0 {
                self.0.clear();
            }
            self.0.push(format!("{depth}<{}", String::from_utf8_lossy(name)));
        }
        fn attribute(&mut self, name: &[u8], value: &str) {
            self.0.push(format!("@{}={value}", String::from_utf8_lossy(name)));
        }
        fn text(&mut self, text: &str) {
            self.0.push(format!("'{text}'"));
        }
        fn end(&mut self, depth: usize) {
            self.0.push(format!("{depth}>"));
        }
    }

    const MIXED: &str = "<?xml version=\"1.0\"?>\n<r:Root xmlns:r=\"urn:x\">\n<!-- c -->\n  <r:Rec r:a=\"1 &amp; 2\" b=\"&#x41;\">\n    <A>x &lt; <![CDATA[<y>]]> <!-- c --> z</A><B><C>c</C>tail</B><D/>\n  </r:Rec>\n  <Rec/>\n  <Other><Rec>t<E k=\"v\"/>&#32;u</Rec></Other>\n</r:Root>\n";

    #[test]
    fn a_visitor_is_given_the_record_piece_by_piece() {
        let mut records = XmlRecords::new(MIXED.as_bytes(), "t.xml", &["Rec"]);
        let mut trace = Trace::default();
        let p = records.next_with(&mut trace).unwrap().unwrap();
        assert_eq!((p.line, p.column), (4, 3));
        assert_eq!(
            trace.0,
            [
                "0<Rec", "@a=1 & 2", "@b=A", "'\n    '", "1<A", "'x '", "'<'", "' '", "'<y>'", "' '", "' z'", "1>",
                "1<B", "2<C", "'c'", "2>", "'tail'", "1>", "1<D", "1>", "'\n  '", "0>",
            ]
        );
        records.next_with(&mut trace).unwrap().unwrap();
        assert_eq!(trace.0, ["0<Rec", "0>"]);
        let p = records.next_with(&mut trace).unwrap().unwrap();
        assert_eq!((p.line, p.column), (8, 10));
        assert_eq!(trace.0, ["0<Rec", "'t'", "1<E", "@k=v", "1>", "' '", "'u'", "0>"]);
        assert!(records.next_with(&mut trace).is_none());
        assert!(records.next_with(&mut trace).is_none());
    }

    #[test]
    fn a_record_log_rebuilds_the_tree() {
        let trees: Vec<Element> = all_of(MIXED);
        let mut records = XmlRecords::new(MIXED.as_bytes(), "t.xml", &["Rec"]);
        let mut log = RecordLog::default();
        let mut rebuilt = Vec::new();
        while let Some(p) = records.next_with(&mut log) {
            let p = p.unwrap();
            rebuilt.push(Element {
                line: p.line,
                column: p.column,
                ..log.element()
            });
        }
        assert_eq!(trees, rebuilt);
        assert_eq!(
            rebuilt[0].to_xml(),
            "<Rec a=\"1 &amp; 2\" b=\"A\"><A>x &lt; &lt;y&gt;  z</A><B>tail<C>c</C></B><D></D></Rec>"
        );
        assert_eq!(rebuilt[2].text, "t u");
    }

    proptest::proptest! {
        /// The log leaves out white space its element has no text before;
        /// the tree it rebuilds is still the one read directly, whatever
        /// mix of text, white space, references, comments, CDATA and child
        /// elements a record holds.
        #[test]
        fn a_record_log_rebuilds_any_mix_of_text_and_white_space(
            pieces in proptest::collection::vec(proptest::sample::select(vec![
                " ", "\n  ", "\t", "a", " b ", "<!--c-->", "&#32;", "&#x9;", "&amp;", "<![CDATA[ ]]>",
                "<![CDATA[x]]>", "<X/>", "<Y> </Y>", "<Y>q<!--c--> </Y>", "<Z>\n <W> w </W>\n</Z>",
                "<Z> <W/> v </Z>", "<V k=\" \"> </V>",
            ]), 0..12),
        ) {
            let xml = format!("<Root>\n <Rec>{}</Rec>\n</Root>", pieces.concat());
            let trees: Vec<Element> = all_of(&xml);
            let mut records = XmlRecords::new(xml.as_bytes(), "t.xml", &["Rec"]);
            let mut log = RecordLog::default();
            let mut rebuilt = Vec::new();
            while let Some(p) = records.next_with(&mut log) {
                let p = p.unwrap();
                rebuilt.push(Element { line: p.line, column: p.column, ..log.element() });
            }
            proptest::prop_assert_eq!(trees, rebuilt);
        }
    }

    #[test]
    fn whitespace_in_attribute_values_survives_a_write_and_a_read() {
        // Found by fuzzing: a CR written back raw read again as a space.
        let xml = "<Root><Rec a=\"x&#13;y&#10;z&#9;w\"><A>p&#13;q</A></Rec></Root>";
        let first = all_of(xml);
        assert_eq!(first[0].attribute("a"), Some("x\ry\nz\tw"));
        let written = first[0].to_xml();
        assert_eq!(written, "<Rec a=\"x&#13;y&#10;z&#9;w\"><A>p&#13;q</A></Rec>");
        let again = all_of(&format!("<Root>{written}</Root>"));
        assert_eq!(again[0].attribute("a"), first[0].attribute("a"));
        assert_eq!(again[0].text_at("A"), Some("p\rq"));
    }

    #[test]
    fn control_characters_xml_forbids_are_refused() {
        for bad in [
            "<Root><Rec a=\"x\u{0}y\"/></Root>",
            "<Root><Rec><A>x\u{1}y</A></Rec></Root>",
            "<Root><Rec><A>x&#0;y</A></Rec></Root>",
            "<Root><Rec a=\"x&#27;y\"/></Root>",
            "<Root><Rec><A><![CDATA[x\u{8}]]></A></Rec></Root>",
        ] {
            let got = all(bad);
            assert!(
                matches!(
                    got.last(),
                    Some(Err(XmlError {
                        fault: XmlFault::Malformed(_),
                        ..
                    }))
                ),
                "{bad:?}: {got:?}"
            );
        }
        // Tab, line feed and carriage return are characters XML allows.
        assert_eq!(
            all_of("<Root><Rec><A>x\ty</A></Rec></Root>")[0].text_at("A"),
            Some("x\ty")
        );
    }

    /// The name table reads every name as the rules say: compared with a
    /// direct reading of them over all names of up to four bytes from an
    /// alphabet with every class of byte.
    #[test]
    fn the_name_table_follows_the_name_rules() {
        fn part(p: &[u8]) -> bool {
            let Some((&first, rest)) = p.split_first() else {
                return false;
            };
            (first.is_ascii_alphabetic() || first == b'_' || first >= 0x80)
                && rest
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') || b >= 0x80)
        }
        fn reference(q: &[u8]) -> bool {
            let shape = match q.iter().position(|&b| b == b':') {
                None => part(q),
                Some(i) => part(&q[..i]) && part(&q[i + 1..]),
            };
            shape && std::str::from_utf8(q).is_ok()
        }
        let alphabet = [
            b'a', b'Z', b'_', b'1', b'.', b'-', b':', b' ', b'"', b'<', 0xC3, 0xA6, 0xFF, 0x00,
        ];
        let mut names: Vec<Vec<u8>> = vec![Vec::new()];
        let mut checked = 0;
        for _ in 0..4 {
            let mut longer = Vec::new();
            for n in &names {
                for &b in &alphabet {
                    let mut m = n.clone();
                    m.push(b);
                    assert_eq!(namespace_well_formed(&m), reference(&m), "{m:?}");
                    checked += 1;
                    longer.push(m);
                }
            }
            names = longer;
        }
        assert!(checked > 40_000);
        assert!(namespace_well_formed(b"edfi:StudentReference") && !namespace_well_formed(b""));
    }

    fn all_of(xml: &str) -> Vec<Element> {
        all(xml).into_iter().map(Result::unwrap).collect()
    }

    #[test]
    fn deep_records_and_documents_are_refused() {
        let deep = |outside: usize, inside: usize| {
            format!(
                "{}<Rec>{}x{}</Rec>{}",
                "<O>".repeat(outside),
                "<I>".repeat(inside),
                "</I>".repeat(inside),
                "</O>".repeat(outside)
            )
        };
        assert!(all(&deep(MAX_DEPTH, MAX_RECORD_DEPTH - 1))[0].is_ok());
        let e = all(&deep(1, MAX_RECORD_DEPTH + 1)).remove(0).unwrap_err();
        assert_eq!(e.fault, XmlFault::TooLarge("Rec".into()));
        let e = all(&deep(MAX_DEPTH + 1, 1)).remove(0).unwrap_err();
        assert_eq!(e.fault, XmlFault::TooLarge("O".into()));
    }

    /// Where each `<Rec` starts, as (line, column), counted the plain way.
    fn rec_positions(xml: &str) -> Vec<(u64, u64)> {
        let (mut line, mut line_start, mut counted) = (1u64, 0usize, 0usize);
        xml.match_indices("<Rec")
            .map(|(i, _)| {
                for (j, _) in xml[counted..i].match_indices('\n') {
                    line += 1;
                    line_start = counted + j + 1;
                }
                counted = i;
                (line, (i - line_start) as u64 + 1)
            })
            .collect()
    }

    #[test]
    fn positions_are_exact_whatever_the_buffer_size() {
        let mut xml = String::from("<Root>\n");
        for i in 0..3000 {
            // Lines of all lengths, blank lines, newlines inside records and long texts.
            xml.push_str(&"\n".repeat(i % 3));
            xml.push_str(&" ".repeat(i % 17));
            xml.push_str(&format!(
                "<Rec><A>{}</A>\n<B>{}</B></Rec>",
                "y".repeat(i % 200),
                "\n".repeat(i % 5)
            ));
            if i % 100 == 0 {
                xml.push_str(&"\n".repeat(20_000));
            }
        }
        xml.push_str("\n  <Rec><A>x</B></Rec></Root>");
        let want = rec_positions(&xml);
        let last = want.last().copied().unwrap();
        let check = |got: Vec<Result<Element, XmlError>>, what: &str| {
            assert_eq!(got.len(), want.len(), "{what}");
            for (g, w) in got[..got.len() - 1].iter().zip(&want) {
                let g = g.as_ref().unwrap();
                assert_eq!((g.line, g.column), *w, "{what}");
            }
            let e = got.last().unwrap().as_ref().unwrap_err();
            assert_eq!((e.line, e.column), (last.0, last.1 + 9), "{what}");
        };
        check(all(&xml), "slice");
        for capacity in [1, 7, 64, 4096, 1 << 16] {
            let input = io::BufReader::with_capacity(capacity, xml.as_bytes());
            check(
                XmlRecords::new(input, "t.xml", &["Rec"]).collect(),
                &format!("capacity {capacity}"),
            );
        }
    }

    #[test]
    fn newlines_in_one_long_event_are_counted() {
        // A text of many lines is consumed at once, past the search for newlines.
        let text = "x\n".repeat(100_000);
        let xml = format!("<Root>\n<Rec><A>{text}</A></Rec>\n<Rec/>\n{text}\n <Rec>x</B></Root>");
        let want = rec_positions(&xml);
        let got = all(&xml);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].as_ref().unwrap().line, 2);
        let r = got[1].as_ref().unwrap();
        assert_eq!((r.line, r.column), want[1]);
        let e = got[2].as_ref().unwrap_err();
        assert_eq!((e.line, e.column), (want[2].0, want[2].1 + 6), "{e}");
    }

    /// A record whose start tag holds `n` attributes, and the time the
    /// engine takes to read it (the best of a few runs, so a busy machine
    /// adds as little as possible).
    fn time_attributes(n: usize) -> (usize, std::time::Duration) {
        let mut xml = String::from("<Root><Rec");
        for i in 0..n {
            xml.push_str(&format!(" a{i:06}=\"v\""));
        }
        xml.push_str("/></Root>");
        let best = (0..5)
            .map(|_| {
                let t = std::time::Instant::now();
                let mut log = RecordLog::default();
                let mut records = XmlRecords::new(xml.as_bytes(), "t.xml", &["Rec"]);
                records.next_with(&mut log).unwrap().unwrap();
                assert_eq!(log.element().attributes.len(), n);
                t.elapsed()
            })
            .min()
            .unwrap_or_default();
        (xml.len(), best)
    }

    #[test]
    fn many_attributes_cost_time_in_proportion_to_their_size() {
        // quick-xml before 0.41 checked attribute names for duplicates in
        // quadratic time (RUSTSEC-2026-0194): one 1 MiB start tag took 25 s.
        // Compared by ratio, not by a fixed time, so a slow machine cannot
        // make the test fail: 8× the attributes may take 8× the time (with
        // generous slack for noise), never the 64× a quadratic check takes.
        let (small_bytes, small) = time_attributes(10_000);
        let large_n = (MAX_RECORD_BYTES - 64) / 13;
        let (large_bytes, large) = time_attributes(large_n);
        assert!(large_bytes <= MAX_RECORD_BYTES && large_bytes > MAX_RECORD_BYTES * 9 / 10);
        let size_ratio = large_bytes as f64 / small_bytes as f64;
        let time_ratio = large.as_secs_f64() / small.as_secs_f64().max(1e-6);
        assert!(
            time_ratio < size_ratio * 4.0,
            "{large_n} attributes ({large_bytes} bytes) took {large:?}, 10000 ({small_bytes} bytes) took {small:?}: {time_ratio:.1}× the time for {size_ratio:.1}× the size"
        );
    }

    #[test]
    fn scan_counts_events() {
        assert_eq!(scan_events(&b"<a><b>x</b></a>"[..], "s").unwrap(), 5);
        assert!(scan_events(&b"<!DOCTYPE a><a/>"[..], "s").is_err());
    }
}
