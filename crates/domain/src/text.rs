//! Text helpers with no home in the model: escapes and counts shared by the adapters and the views.

/// `text` with each `<marker>XX` escape (two hex digits) decoded to its byte; bytes that are not
/// a valid escape are kept as they are, and bytes that are not UTF-8 are replaced. `%` decodes
/// URL escapes; the dashboard's file-safe names use `~`.
pub fn decode_escapes(text: &str, marker: u8) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == marker).then(|| text.get(i + 1..i + 3)).flatten().and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `1 target`, `3 targets`: every noun Baton counts takes a plain `s`.
pub fn counted(count: usize, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(counted(1, "target"), "1 target");
        assert_eq!(counted(0, "wave"), "0 waves");
        assert_eq!(counted(12, "monitor"), "12 monitors");
    }

    #[test]
    fn escapes_decode_and_anything_else_stays() {
        assert_eq!(decode_escapes("a%2Fb%20c", b'%'), "a/b c");
        assert_eq!(decode_escapes("a~2fb", b'~'), "a/b");
        assert_eq!(decode_escapes("100%", b'%'), "100%", "a marker without two hex digits stays");
        assert_eq!(decode_escapes("%zz%4", b'%'), "%zz%4");
        assert_eq!(decode_escapes("%C3%BC", b'%'), "ü", "bytes make UTF-8 together");
        assert_eq!(decode_escapes("%FF", b'%'), "\u{FFFD}");
    }
}
