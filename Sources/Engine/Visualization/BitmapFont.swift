import ElucidateCore
import ElucidateIO
import ElucidateImage
import Foundation

/// A small built-in bitmap font for titles and tick labels: printable ASCII (32…126),
/// each glyph 5 pixels wide and 9 tall in a 6×10 cell (one column and one row of space).
/// Capitals and digits use rows 0…6 (the baseline is under row 6), lower case has its
/// x-height in rows 2…6 and descenders in rows 7…8. Other characters are drawn as `?`,
/// except U+2212 (minus), which is drawn as `-`. Text is drawn at an integer magnification.
public enum BitmapFont {
    /// Glyph size and cell size in pixels at magnification 1.
    public static let glyphWidth = 5, glyphHeight = 9
    /// A glyph's cell: the glyph plus one column and one row of space.
    public static let cellWidth = 6, cellHeight = 10

    /// The width in pixels of `text` at magnification `scale` (no trailing space column).
    public static func width(of text: String, scale: Int = 1) -> Int {
        let count = text.unicodeScalars.count
        return count == 0 ? 0 : (count * cellWidth - 1) * scale
    }

    /// The height in pixels of one line at magnification `scale` (without the spacing row).
    public static func height(scale: Int = 1) -> Int { glyphHeight * scale }

    /// `text` cut to at most `maximumWidth` pixels at `scale`, with `..` marking a cut.
    public static func fitting(_ text: String, maximumWidth: Int, scale: Int = 1) -> String {
        if width(of: text, scale: scale) <= maximumWidth { return text }
        var scalars = Array(text.unicodeScalars)
        while !scalars.isEmpty {
            scalars.removeLast()
            var candidate = String.UnicodeScalarView()
            candidate.append(contentsOf: scalars)
            let cut = String(candidate) + ".."
            if width(of: cut, scale: scale) <= maximumWidth { return cut }
        }
        return ""
    }

    /// Draws `text` with its top-left corner at (`x`, `y`) in one opaque colour, clipped.
    public static func draw(_ text: String, on canvas: inout Canvas, x: Int, y: Int, scale: Int = 1,
                            red: UInt8 = 0, green: UInt8 = 0, blue: UInt8 = 0) {
        for (i, scalar) in text.unicodeScalars.enumerated() {
            let rows = glyph(scalar)
            let left = x + i * cellWidth * scale
            for (r, bits) in rows.enumerated() {
                for c in 0..<glyphWidth where bits & (1 << (glyphWidth - 1 - c)) != 0 {
                    canvas.fill(x: left + c * scale, y: y + r * scale, width: scale, height: scale,
                                red: red, green: green, blue: blue)
                }
            }
        }
    }

    /// The 9 rows of a glyph, bit 4 the leftmost pixel.
    static func glyph(_ scalar: Unicode.Scalar) -> [UInt8] {
        var code = Int(scalar.value)
        if code == 0x2212 { code = Int(UInt8(ascii: "-")) }
        if code < 32 || code > 126 { code = Int(UInt8(ascii: "?")) }
        return glyphs[code - 32]
    }

    /// 95 glyphs (codes 32…126), parsed once from `art`.
    private static let glyphs: [[UInt8]] = {
        let lines = art.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("//") }
        precondition(lines.count % glyphHeight == 0, "font art has \(lines.count) rows")
        var out: [[UInt8]] = []
        for block in stride(from: 0, to: lines.count, by: glyphHeight) {
            let cells = lines[block].split(separator: " ").count
            for cell in 0..<cells {
                var rows: [UInt8] = []
                for r in 0..<glyphHeight {
                    let row = Array(lines[block + r].split(separator: " ")[cell])
                    precondition(row.count == glyphWidth, "bad font art row \(block + r)")
                    rows.append(row.reduce(0) { $0 << 1 | ($1 == "#" ? 1 : 0) })
                }
                out.append(rows)
            }
        }
        precondition(out.count == 95, "font art has \(out.count) glyphs, expected 95")
        return out
    }()

    /// The glyphs as pictures: 16 per block (their characters in the comment above each),
    /// 9 rows each, `#` for ink.
    private static let art = #"""
            // sp    !     "     #     $     %     &     '     (     )     *     +     ,     -     .     /
            ..... ..#.. .#.#. .#.#. ..#.. ##... .##.. ..#.. ...#. .#... ..... ..... ..... ..... ..... ....#
            ..... ..#.. .#.#. .#.#. .#### ##..# #..#. ..#.. ..#.. ..#.. ..#.. ..#.. ..... ..... ..... ...#.
            ..... ..#.. .#.#. ##### #.#.. ...#. #.#.. ..#.. .#... ...#. #.#.# ..#.. ..... ..... ..... ...#.
            ..... ..#.. ..... .#.#. .###. ..#.. .#... ..... .#... ...#. .###. ##### ..... .###. ..... ..#..
            ..... ..#.. ..... ##### ..#.# .#... #.#.# ..... .#... ...#. #.#.# ..#.. ..... ..... ..... .#...
            ..... ..... ..... .#.#. ####. #..## #..#. ..... ..#.. ..#.. ..#.. ..#.. ..##. ..... ..##. .#...
            ..... ..#.. ..... .#.#. ..#.. ...## .##.# ..... ...#. .#... ..... ..... ..##. ..... ..##. #....
            ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..#.. ..... ..... .....
            ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .#... ..... ..... .....

            // 0     1     2     3     4     5     6     7     8     9     :     ;     <     =     >     ?
            .###. ..#.. .###. ##### ...#. ##### ..##. ##### .###. .###. ..... ..... ...#. ..... .#... .###.
            #...# .##.. #...# ...#. ..##. #.... .#... ....# #...# #...# ..##. ..##. ..#.. ..... ..#.. #...#
            #..## ..#.. ....# ..#.. .#.#. ####. #.... ...#. #...# #...# ..##. ..##. .#... ##### ...#. ....#
            #.#.# ..#.. ...#. ...#. #..#. ....# ####. ..#.. .###. .#### ..... ..... #.... ..... ....# ...#.
            ##..# ..#.. ..#.. ....# ##### ....# #...# .#... #...# ....# ..##. ..##. .#... ##### ...#. ..#..
            #...# ..#.. .#... #...# ...#. #...# #...# .#... #...# ...#. ..##. ..##. ..#.. ..... ..#.. .....
            .###. .###. ##### .###. ...#. .###. .###. .#... .###. .##.. ..... ..#.. ...#. ..... .#... ..#..
            ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .#... ..... ..... ..... .....
            ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....

            // @     A     B     C     D     E     F     G     H     I     J     K     L     M     N     O
            .###. .###. ####. .###. ###.. ##### ##### .###. #...# .###. ..### #...# #.... #...# #...# .###.
            #...# #...# #...# #...# #..#. #.... #.... #...# #...# ..#.. ...#. #..#. #.... ##.## #...# #...#
            #.### #...# #...# #.... #...# #.... #.... #.... #...# ..#.. ...#. #.#.. #.... #.#.# ##..# #...#
            #.#.# ##### ####. #.... #...# ####. ####. #.### ##### ..#.. ...#. ##... #.... #.#.# #.#.# #...#
            #.### #...# #...# #.... #...# #.... #.... #...# #...# ..#.. ...#. #.#.. #.... #...# #..## #...#
            #.... #...# #...# #...# #..#. #.... #.... #...# #...# ..#.. #..#. #..#. #.... #...# #...# #...#
            .#### #...# ####. .###. ###.. ##### #.... .#### #...# .###. .##.. #...# ##### #...# #...# .###.
            ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....
            ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....

            // P     Q     R     S     T     U     V     W     X     Y     Z     [     \     ]     ^     _
            ####. .###. ####. .#### ##### #...# #...# #...# #...# #...# ##### .###. #.... .###. ..#.. .....
            #...# #...# #...# #.... ..#.. #...# #...# #...# #...# #...# ....# .#... .#... ...#. .#.#. .....
            #...# #...# #...# #.... ..#.. #...# #...# #...# .#.#. .#.#. ...#. .#... .#... ...#. #...# .....
            ####. #...# ####. .###. ..#.. #...# #...# #.#.# ..#.. ..#.. ..#.. .#... ..#.. ...#. ..... .....
            #.... #.#.# #.#.. ....# ..#.. #...# #...# #.#.# .#.#. ..#.. .#... .#... ...#. ...#. ..... .....
            #.... #..#. #..#. ....# ..#.. #...# .#.#. #.#.# #...# ..#.. #.... .#... ...#. ...#. ..... .....
            #.... .##.# #...# ####. ..#.. .###. ..#.. .#.#. #...# ..#.. ##### .###. ....# .###. ..... .....
            ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... #####
            ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....

            // `     a     b     c     d     e     f     g     h     i     j     k     l     m     n     o
            .#... ..... #.... ..... ....# ..... ..##. ..... #.... ..#.. ...#. #.... .##.. ..... ..... .....
            ..#.. ..... #.... ..... ....# ..... .#..# ..... #.... ..... ..... #.... ..#.. ..... ..... .....
            ..... .###. ####. .###. .#### .###. .#... .#### #.##. .##.. ..##. #..#. ..#.. ##.#. #.##. .###.
            ..... ....# #...# #.... #...# #...# ###.. #...# ##..# ..#.. ...#. #.#.. ..#.. #.#.# ##..# #...#
            ..... .#### #...# #.... #...# ##### .#... #...# #...# ..#.. ...#. ##... ..#.. #.#.# #...# #...#
            ..... #...# #...# #...# #...# #.... .#... #...# #...# ..#.. ...#. #.#.. ..#.. #.#.# #...# #...#
            ..... .#### ####. .###. .#### .###. .#... .#### #...# .###. ...#. #..#. .###. #.#.# #...# .###.
            ..... ..... ..... ..... ..... ..... ..... ....# ..... ..... #..#. ..... ..... ..... ..... .....
            ..... ..... ..... ..... ..... ..... ..... .###. ..... ..... .##.. ..... ..... ..... ..... .....

            // p     q     r     s     t     u     v     w     x     y     z     {     |     }     ~
            ..... ..... ..... ..... .#... ..... ..... ..... ..... ..... ..... ...#. ..#.. .#... .....
            ..... ..... ..... ..... .#... ..... ..... ..... ..... ..... ..... ..#.. ..#.. ..#.. .....
            ####. .#### #.##. .#### ###.. #...# #...# #...# #...# #...# ##### ..#.. ..#.. ..#.. .#...
            #...# #...# ##..# #.... .#... #...# #...# #...# .#.#. #...# ...#. .#... ..#.. ...#. #.#.#
            #...# #...# #.... .###. .#... #...# #...# #.#.# ..#.. #...# ..#.. ..#.. ..#.. ..#.. ...#.
            #...# #...# #.... ....# .#..# #..## .#.#. #.#.# .#.#. #...# .#... ..#.. ..#.. ..#.. .....
            ####. .#### #.... ####. ..##. .##.# ..#.. .#.#. #...# .#### ##### ...#. ..#.. .#... .....
            #.... ....# ..... ..... ..... ..... ..... ..... ..... ....# ..... ..... ..#.. ..... .....
            #.... ....# ..... ..... ..... ..... ..... ..... ..... .###. ..... ..... ..... ..... .....
            """#
}
