import ElucidateCore
import Foundation

/// Text that came from a file (class labels, metadata, tensor and entry names, file names)
/// made safe to show on a terminal.
///
/// A terminal acts on control characters: ESC starts sequences that set the window title
/// (`ESC ] 0 ; … BEL`), clear the screen (`ESC [ 2 J`) or remap keys, CR and BS overwrite
/// what was printed, a newline forges another line of output. So every control character
/// — C0 (U+0000…U+001F), DEL (U+007F) and C1 (U+0080…U+009F, where U+009B is a one-byte
/// CSI on some terminals) — is shown as `\xNN` instead. Everything else, including
/// non-ASCII letters, passes unchanged; a backslash is not doubled, so the result is for
/// showing, not for parsing back.
///
/// Elucidate's command line shows every such text through this; JSON output keeps the
/// text exact and relies on JSON's own escaping instead.
public enum TerminalText {
    /// `text` with every control character shown as `\xNN`; longer than `limit` characters
    /// (when given), cut there and ended with `…`.
    public static func escaped(_ text: String, limit: Int? = nil) -> String {
        var out = String.UnicodeScalarView()
        var count = 0
        for scalar in text.unicodeScalars {
            if let limit, count >= limit { return String(out) + "…" }
            count += 1
            if isControl(scalar) {
                out.append(contentsOf: String(format: "\\x%02x", scalar.value).unicodeScalars)
            } else {
                out.append(scalar)
            }
        }
        return String(out)
    }

    /// Whether `text` holds a character `escaped` would change.
    public static func hasControlCharacters(_ text: String) -> Bool {
        text.unicodeScalars.contains(where: isControl)
    }

    /// C0, DEL and C1: Unicode's general category Cc.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }
}
