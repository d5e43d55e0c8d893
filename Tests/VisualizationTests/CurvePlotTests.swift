import ElucidateVisualization
import Elucidate
import XCTest

/// The deletion/insertion chart: its size, its lines in the palette's colours, degenerate input.
final class CurvePlotTests: XCTestCase {
    func colourCount(_ canvas: Canvas, _ colour: (UInt8, UInt8, UInt8)) -> Int {
        var count = 0
        for y in 0..<canvas.height {
            for x in 0..<canvas.width {
                let pixel = canvas[x, y]
                if (pixel.red, pixel.green, pixel.blue) == colour { count += 1 }
            }
        }
        return count
    }

    func testDrawsEachCurveInItsColour() {
        let canvas = CurvePlot.draw([("a", [1, 0.5, 0]), ("b", [0, 0.5, 1])], title: "deletion", width: 300, height: 200)
        XCTAssertEqual(canvas.width, 300)
        XCTAssertEqual(canvas.height, 200)
        XCTAssertGreaterThan(colourCount(canvas, (31, 119, 180)), 200)  // a line across the plot, and its legend
        XCTAssertGreaterThan(colourCount(canvas, (255, 127, 14)), 200)
    }

    func testDegenerateCurvesDoNotCrash() {
        let canvas = CurvePlot.draw([("flat", [0, 0]), ("nan", [.nan, .infinity]), ("one", [1])], title: "", width: 10, height: 10)
        XCTAssertEqual(canvas.width, 160)
        XCTAssertEqual(canvas.height, 120)
    }
}
