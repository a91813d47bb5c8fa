//! `--bless`: a case file with its `expect` replaced, the rest of the text as it was written
//! (key order, layout, comments in `description`s): only the value of the top-level `expect`
//! changes, or `expect` is appended when the case has none.

use serde_json::Value;

/// `text` (a case file) with `expect` set to `value`, pretty-printed with a 2-space indent.
pub fn bless(text: &str, value: &Value) -> Result<String, String> {
    let pretty = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    // The value sits one level in: its lines after the first are indented by one more step.
    let indented = pretty.replace('\n', "\n  ");
    let object = top_level(text)?;
    let mut out = String::with_capacity(text.len() + indented.len());
    match object.expect {
        Some((start, end)) => {
            out.push_str(&text[..start]);
            out.push_str(&indented);
            out.push_str(&text[end..]);
        }
        None => {
            let before = text[..object.close].trim_end();
            out.push_str(before);
            if object.members > 0 {
                out.push(',');
            }
            out.push_str("\n  \"expect\": ");
            out.push_str(&indented);
            out.push('\n');
            out.push_str(&text[object.close..]);
        }
    }
    Ok(out)
}

/// Where things are in the top-level object.
struct TopLevel {
    /// The byte range of the value of `expect`.
    expect: Option<(usize, usize)>,
    /// The offset of the object's closing brace.
    close: usize,
    members: usize,
}

fn top_level(text: &str) -> Result<TopLevel, String> {
    let bytes = text.as_bytes();
    let mut pos = skip_ws(bytes, 0);
    if bytes.get(pos) != Some(&b'{') {
        return Err("the case is not a JSON object".into());
    }
    pos += 1;
    let mut expect = None;
    let mut members = 0;
    loop {
        pos = skip_ws(bytes, pos);
        match bytes.get(pos) {
            Some(b'}') => {
                return Ok(TopLevel {
                    expect,
                    close: pos,
                    members,
                });
            }
            Some(b',') if members > 0 => {
                pos = skip_ws(bytes, pos + 1);
            }
            Some(b'"') if members == 0 => {}
            _ => return Err(format!("unexpected text at byte {pos}")),
        }
        let key_end = end_of_string(bytes, pos)?;
        let key: String =
            serde_json::from_str(&text[pos..key_end]).map_err(|e| format!("bad key: {e}"))?;
        pos = skip_ws(bytes, key_end);
        if bytes.get(pos) != Some(&b':') {
            return Err(format!("expected `:` at byte {pos}"));
        }
        let start = skip_ws(bytes, pos + 1);
        let end = end_of_value(bytes, start)?;
        if key == "expect" {
            expect = Some((start, end));
        }
        members += 1;
        pos = end;
    }
}

fn skip_ws(bytes: &[u8], mut pos: usize) -> usize {
    while bytes.get(pos).is_some_and(u8::is_ascii_whitespace) {
        pos += 1;
    }
    pos
}

/// The offset just after the string starting at `pos` (its opening quote).
fn end_of_string(bytes: &[u8], pos: usize) -> Result<usize, String> {
    if bytes.get(pos) != Some(&b'"') {
        return Err(format!("expected a string at byte {pos}"));
    }
    let mut i = pos + 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(format!("unterminated string at byte {pos}"))
}

/// The offset just after the JSON value starting at `pos`.
fn end_of_value(bytes: &[u8], pos: usize) -> Result<usize, String> {
    match bytes.get(pos) {
        Some(b'"') => end_of_string(bytes, pos),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = pos;
            while let Some(&b) = bytes.get(i) {
                match b {
                    b'"' => {
                        i = end_of_string(bytes, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return Ok(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            Err(format!("unterminated value at byte {pos}"))
        }
        Some(_) => {
            let mut i = pos;
            while bytes
                .get(i)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
            {
                i += 1;
            }
            Ok(i)
        }
        None => Err("the case ends early".into()),
    }
}
