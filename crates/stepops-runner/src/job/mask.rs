//! Masking of injected secret values in a job's output, as CI systems do: every value is
//! replaced by `***`, and so is each line of a multi-line value (output is handled line by
//! line, so a value spanning lines is masked line by line). Output is split into lines from
//! raw bytes whatever the read boundaries; a line longer than the line limit is emitted in
//! pieces, and a piece never ends inside (or just before the end of) a secret: the bytes that
//! could still start one are carried to the next piece.

use aho_corasick::{AhoCorasick, MatchKind};

/// What replaces a secret value.
pub const MASK: &[u8] = b"***";

/// The values to mask.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// Longest first, so that a whole value is masked before a line of it.
    needles: Vec<Vec<u8>>,
    /// One automaton over all of them: leftmost match, the longest at a position.
    finder: Option<AhoCorasick>,
}

impl Masker {
    /// Masks `values` and, for a multi-line value, each of its lines (lines shorter than 3
    /// characters after trimming are too common to mask and are skipped).
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Masker {
        let mut needles: Vec<Vec<u8>> = Vec::new();
        for value in values {
            let mut add = |s: &str| {
                if !s.is_empty() && !needles.iter().any(|n| n == s.as_bytes()) {
                    needles.push(s.as_bytes().to_vec());
                }
            };
            let trimmed = value.trim_end_matches(['\n', '\r']);
            add(trimmed);
            if trimmed.contains('\n') {
                for line in trimmed.lines() {
                    let line = line.trim();
                    if line.len() >= 3 {
                        add(line);
                    }
                }
            }
        }
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        let finder = (!needles.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&needles)
                .expect("literal secret values always build an automaton")
        });
        Masker { needles, finder }
    }

    /// The longest value, in bytes (0 when there is none).
    pub fn longest(&self) -> usize {
        self.needles.first().map_or(0, Vec::len)
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.finder.is_none()
    }

    /// The spans of `buf` to mask: leftmost match at each position, longest value first,
    /// non-overlapping.
    fn spans(&self, buf: &[u8]) -> Vec<(usize, usize)> {
        match &self.finder {
            None => Vec::new(),
            Some(f) => f.find_iter(buf).map(|m| (m.start(), m.end())).collect(),
        }
    }

    /// Whether any value (or line of a value) occurs in `buf`.
    fn occurs_in(&self, buf: &[u8]) -> bool {
        self.finder.as_ref().is_some_and(|f| f.is_match(buf))
    }

    /// `buf` with every value replaced by [`MASK`].
    pub fn mask(&self, buf: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(buf.len());
        self.mask_into(buf, &mut out);
        out
    }

    /// Appends `buf`, every value replaced by [`MASK`], to `out`.
    pub fn mask_into(&self, buf: &[u8], out: &mut Vec<u8>) {
        if self.is_empty() {
            out.extend_from_slice(buf);
            return;
        }
        let mut at = 0;
        for (start, end) in self.spans(buf) {
            out.extend_from_slice(&buf[at..start]);
            out.extend_from_slice(MASK);
            at = end;
        }
        out.extend_from_slice(&buf[at..]);
    }

    /// Where a piece of an unfinished line may end: before any secret that starts in the last
    /// `longest - 1` bytes (it may continue in the next read) or that crosses that point.
    fn safe_cut(&self, buf: &[u8]) -> usize {
        let keep = self.longest().saturating_sub(1);
        let mut cut = buf.len().saturating_sub(keep);
        for (start, end) in self.spans(buf) {
            if start < cut && end > cut {
                cut = start;
            }
        }
        cut
    }
}

/// Splits a byte stream into masked lines (without their `\n`).
#[derive(Debug)]
pub struct LineSplitter {
    masker: Masker,
    pending: Vec<u8>,
    max_line: usize,
}

impl LineSplitter {
    /// Lines longer than `max_line` bytes are emitted in pieces.
    pub fn new(masker: Masker, max_line: usize) -> LineSplitter {
        LineSplitter {
            max_line: max_line.max(masker.longest() * 2 + 16),
            masker,
            pending: Vec::new(),
        }
    }

    /// Feeds bytes ([`LineSplitter::feed`] passes the lines that need nothing straight
    /// through); appends each complete masked line, with its `\n`, to `out`.
    fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let mut rest = bytes;
        // The line the previous read left unfinished.
        if !self.pending.is_empty()
            && let Some(nl) = memchr::memchr(b'\n', rest)
        {
            self.pending.extend_from_slice(&rest[..nl]);
            let line = std::mem::take(&mut self.pending);
            self.line(&line, out);
            self.pending = line;
            self.pending.clear();
            rest = &rest[nl + 1..];
        }
        // The complete lines of these bytes, each masked and stripped.
        if self.pending.is_empty()
            && let Some(last) = memchr::memrchr(b'\n', rest)
        {
            let mut from = 0;
            for nl in memchr::memchr_iter(b'\n', &rest[..=last]) {
                self.line(&rest[from..nl], out);
                from = nl + 1;
            }
            rest = &rest[last + 1..];
        }
        self.pending.extend_from_slice(rest);
        while self.pending.len() > self.max_line {
            let cut = self.masker.safe_cut(&self.pending).max(1);
            self.masker.mask_into(&self.pending[..cut], out);
            out.push(b'\n');
            self.pending.drain(..cut);
        }
    }

    /// Feeds the bytes of one read and hands the complete masked lines (each with its `\n`)
    /// to `emit`, in order. The line carried from the previous read is finished through
    /// `scratch`; the read's complete lines then go straight from `bytes` when nothing in them
    /// is masked or stripped (no copy, and one search for the values over the whole block
    /// rather than one per line), otherwise through `scratch` too, which is cleared after each
    /// use (one buffer per reader: no allocation per read).
    pub fn feed(&mut self, bytes: &[u8], scratch: &mut Vec<u8>, mut emit: impl FnMut(&[u8])) {
        let mut rest = bytes;
        if !self.pending.is_empty() {
            let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |nl| nl + 1);
            self.push(&rest[..end], scratch);
            rest = &rest[end..];
        }
        // No value occurring anywhere in the block means none occurs in any of its lines.
        if let Some(last) = memchr::memrchr(b'\n', rest)
            && memchr::memchr(b'\r', &rest[..last]).is_none()
            && !self.masker.occurs_in(&rest[..last])
        {
            if !scratch.is_empty() {
                emit(scratch);
                scratch.clear();
            }
            emit(&rest[..=last]);
            rest = &rest[last + 1..];
        }
        self.push(rest, scratch);
        if !scratch.is_empty() {
            emit(scratch);
            scratch.clear();
        }
    }

    /// Appends one complete line (without its `\n`, a final `\r` dropped), masked, and `\n`.
    fn line(&self, line: &[u8], out: &mut Vec<u8>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.masker.mask_into(line, out);
        out.push(b'\n');
    }

    /// Appends what is left when the stream ends.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.pending.is_empty() {
            self.masker.mask_into(&self.pending, out);
            out.push(b'\n');
            self.pending.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(masker: Masker, max: usize, reads: &[&[u8]]) -> Vec<String> {
        let mut s = LineSplitter::new(masker, max);
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        for r in reads {
            s.feed(r, &mut scratch, |batch| {
                assert!(batch.ends_with(b"\n"), "a batch of complete lines");
                out.extend_from_slice(batch);
            });
            assert!(scratch.is_empty());
        }
        s.finish(&mut out);
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn masks_values_whatever_the_read_boundaries() {
        let m = Masker::new(["hunter2-secret"]);
        let text = b"a hunter2-secret b\nsecond hunter2-secret\n";
        for split in 0..text.len() {
            let (a, b) = text.split_at(split);
            assert_eq!(
                lines(m.clone(), 4096, &[a, b]),
                ["a *** b", "second ***"],
                "split at {split}"
            );
        }
    }

    /// Reads without any value pass straight through; a read with one is masked line by line,
    /// and the lines around it come out in order.
    #[test]
    fn reads_with_and_without_values_keep_their_order() {
        let m = Masker::new(["hunter2-secret"]);
        let clean = b"a clean line\nanother\n";
        let dirty = b"x hunter2-secret y\nafter\n";
        let out = lines(
            m,
            4096,
            &[clean, dirty, clean, b"hunter2-", b"secret\n", clean],
        );
        assert_eq!(
            out,
            [
                "a clean line",
                "another",
                "x *** y",
                "after",
                "a clean line",
                "another",
                "***",
                "a clean line",
                "another"
            ]
        );
    }

    #[test]
    fn masks_each_line_of_a_multi_line_value() {
        let m = Masker::new(["-----BEGIN KEY-----\nMIIEabcdef\n-----END KEY-----\n"]);
        let out = lines(
            m,
            4096,
            &[b"key: -----BEGIN KEY-----\nMIIEabcdef\n-----END KEY-----\nok\n"],
        );
        assert_eq!(out, ["key: ***", "***", "***", "ok"]);
    }

    #[test]
    fn a_long_line_is_cut_in_pieces_never_inside_a_secret() {
        let secret = "s3cr3t-value-0123456789";
        let m = Masker::new([secret]);
        for offset in 0..64 {
            let mut line = "x".repeat(offset);
            line.push_str(secret);
            line.push_str(&"y".repeat(100));
            let bytes = line.as_bytes();
            // Reads of 7 bytes, pieces of at most 62 bytes.
            let reads: Vec<&[u8]> = bytes.chunks(7).collect();
            let out = lines(m.clone(), 62, &reads).concat();
            assert!(!out.contains("s3cr3t"), "offset {offset}: {out}");
            assert_eq!(out.matches("***").count(), 1, "offset {offset}");
        }
    }

    /// The automaton finds what a naive scan (leftmost, longest value first) finds.
    #[test]
    fn leftmost_longest_as_a_naive_scan() {
        let m = Masker::new(["abc", "abcdef", "cde", "x"]);
        let text = b"xxabcdefg abcd cdex abc";
        let naive = {
            let mut spans = Vec::new();
            let mut i = 0;
            while i < text.len() {
                match m.needles.iter().find(|n| text[i..].starts_with(n)) {
                    Some(n) => {
                        spans.push((i, i + n.len()));
                        i += n.len();
                    }
                    None => i += 1,
                }
            }
            spans
        };
        assert_eq!(m.spans(text), naive);
        assert_eq!(m.mask(text), b"*********g ***d ****** ***".to_vec());
    }

    /// Whatever the read boundaries, the lines come out whole and in order, whether a read's
    /// lines are passed straight through or go through the scratch buffer (a `\r`, a line
    /// carried over from the previous read, a line cut in pieces).
    #[test]
    fn lines_pass_through_in_order_whatever_the_reads() {
        let text = b"one\ntwo\r\nthree three three three\nfour\n\nfive";
        let want = ["one", "two", "three three three three", "four", "", "five"];
        for a in 0..text.len() {
            for b in a..text.len() {
                let reads = [&text[..a], &text[a..b], &text[b..]];
                assert_eq!(lines(Masker::new([]), 4096, &reads), want, "reads {a}/{b}");
            }
        }
        // An unfinished line longer than the limit is emitted as a piece of its own.
        let cut = lines(Masker::new([]), 8, &[b"0123456789abcdefghij", b"klm\nok\n"]);
        assert_eq!(cut, ["0123456789abcdefghij", "klm", "ok"]);
    }

    #[test]
    fn nothing_to_mask_passes_through() {
        assert_eq!(
            lines(Masker::new([]), 8, &[b"abc\r\nlast"]),
            ["abc", "last"]
        );
    }
}
