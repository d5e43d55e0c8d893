import ElucidateCore
import Foundation

/// A line chart of curves sampled at equally spaced points on x ∈ [0, 1] — deletion and
/// insertion curves (`elucidate evaluate deletion --plot`) — drawn with `BitmapFont` labels.
public enum CurvePlot {
    /// Line colours, cycled over the curves (matplotlib's first tab10 colours).
    static let palette: [(UInt8, UInt8, UInt8)] = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
                                                   (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127)]

    /// A `width`×`height` chart (at least 160×120) of `curves` (each at least two values,
    /// drawn from x = 0 to 1) with a `title` above, the y axis from 0 to the largest value
    /// (its top labelled), and one legend line per curve, named by `name` (cut to fit).
    public static func draw(_ curves: [(name: String, values: [Float])], title: String,
                            width: Int = 480, height: Int = 320) -> Canvas {
        let (width, height) = (max(width, 160), max(height, 120))
        var canvas = Canvas(width: width, height: height)
        let text = BitmapFont.cellHeight
        let left = 8 + BitmapFont.width(of: "0.000e-00"), right = width - 10
        let top = 8 + text + 6, bottom = height - 14 - text * (curves.count + 1)
        BitmapFont.draw(BitmapFont.fitting(title, maximumWidth: width - 16), on: &canvas, x: 8, y: 6)
        let finite = curves.flatMap(\.values).filter(\.isFinite)
        let yMax = max(finite.max() ?? 1, 1e-12) * 1.05
        guard bottom - top >= 20 else { return canvas }
        canvas.frame(x: left, y: top, width: right - left + 1, height: bottom - top + 1, red: 120, green: 120, blue: 120)
        BitmapFont.draw(Self.label(yMax), on: &canvas, x: 4, y: top)
        BitmapFont.draw("0", on: &canvas, x: left - BitmapFont.width(of: "0") - 4, y: bottom - text + 2)
        BitmapFont.draw("0", on: &canvas, x: left, y: bottom + 3)
        BitmapFont.draw("1", on: &canvas, x: right - BitmapFont.width(of: "1"), y: bottom + 3)
        for (index, curve) in curves.enumerated() where curve.values.count >= 2 {
            let colour = palette[index % palette.count]
            func point(_ i: Int) -> (Int, Int) {
                let x = left + Int((Double(i) / Double(curve.values.count - 1) * Double(right - left)).rounded())
                let value = curve.values[i].isFinite ? Double(curve.values[i]) : 0
                let y = bottom - Int((value / Double(yMax) * Double(bottom - top)).rounded())
                return (x, min(max(y, top), bottom))
            }
            for i in 1..<curve.values.count {
                line(from: point(i - 1), to: point(i), on: &canvas, colour: colour)
            }
            let legendY = bottom + 3 + text * (index + 1)
            canvas.fill(x: 8, y: legendY + 3, width: 12, height: 3, red: colour.0, green: colour.1, blue: colour.2)
            BitmapFont.draw(BitmapFont.fitting(curve.name, maximumWidth: width - 32), on: &canvas, x: 24, y: legendY)
        }
        return canvas
    }

    /// A two-pixel line from `a` to `b` (Bresenham), clipped to the canvas.
    static func line(from a: (Int, Int), to b: (Int, Int), on canvas: inout Canvas, colour: (UInt8, UInt8, UInt8)) {
        var (x, y) = a
        let (dx, dy) = (abs(b.0 - a.0), -abs(b.1 - a.1))
        let (sx, sy) = (a.0 < b.0 ? 1 : -1, a.1 < b.1 ? 1 : -1)
        var error = dx + dy
        while true {
            canvas.fill(x: x, y: y, width: 2, height: 2, red: colour.0, green: colour.1, blue: colour.2)
            if x == b.0 && y == b.1 { break }
            let doubled = 2 * error
            if doubled >= dy { error += dy; x += sx }
            if doubled <= dx { error += dx; y += sy }
        }
    }

    /// A value as the y axis labels it: three significant digits.
    static func label(_ value: Float) -> String {
        value >= 0.01 ? String(format: "%.3f", value) : String(format: "%.2e", value)
    }
}
