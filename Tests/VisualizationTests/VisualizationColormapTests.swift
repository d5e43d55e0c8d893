import Elucidate
import Foundation
import TestSupport
import XCTest

/// Colormaps against matplotlib's tables and lookups (fixtures from
/// tools/make_visualization_fixtures.py).
final class VisualizationColormapTests: XCTestCase {
    struct Manifest: Decodable {
        let colormaps: [String]
        let lookupColormaps: [String]
    }

    func manifest() throws -> Manifest {
        try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: fixtureURL("visualization/manifest.json")))
    }

    /// Every named map, reversed map, Captum's RdWhGn and the user gradients equal
    /// matplotlib's 256-entry float table to 1/255 — and the drawn bytes equal
    /// `(lut * 255).astype(uint8)` exactly except where matplotlib's own `_r` tables differ.
    func testTablesMatchMatplotlib() throws {
        let manifest = try manifest()
        let tables = try NPY.readFloat32(fixtureURL("visualization/colormaps.npy"))
        XCTAssertEqual(tables.shape, [manifest.colormaps.count, 256, 3])
        let reference = tables.scalars
        let drawn = try NPY.readInt32(fixtureURL("visualization/colormap_bytes.npy"))
        XCTAssertEqual(drawn.shape, [manifest.colormaps.count, 256, 3])
        var worst: Float = 0
        for (m, name) in manifest.colormaps.enumerated() {
            let map = try Colormap.parse(name)
            var exact = true
            for i in 0..<(256 * 3) {
                let expected = reference[m * 768 + i]
                let actual = Float(map.table[i]) / 255
                worst = max(worst, abs(actual - expected))
                if Int32(map.table[i]) != drawn.values[m * 768 + i] { exact = false }
            }
            if !name.hasSuffix("_r") { XCTAssertTrue(exact, "\(name): drawn bytes differ from matplotlib's") }
        }
        XCTAssertLessThanOrEqual(worst, 1.0 / 255 + 1e-7, "largest colour difference \(worst * 255)/255")
        print("colormaps vs matplotlib: \(manifest.colormaps.count) tables, max abs error \(worst) (\(worst * 255)/255)")
        for name in ["viridis", "magma", "inferno", "plasma", "gray", "Greens", "Reds", "Blues", "RdYlGn", "RdWhGn"] {
            XCTAssertTrue(manifest.colormaps.contains(name), name)
        }
    }

    /// The value → colour lookup matches `cmap(Normalize(vmin, vmax)(values), bytes=True)`
    /// for the ranges Captum uses, on values at and around every bin edge.
    func testLookupMatchesMatplotlib() throws {
        let manifest = try manifest()
        let values = try NPY.readFloat32(fixtureURL("visualization/colormap_lookup_values.npy")).scalars
        let expected = try NPY.readFloat32(fixtureURL("visualization/colormap_lookup.npy"))
        XCTAssertEqual(expected.shape, [manifest.lookupColormaps.count, 2, values.count, 3])
        let reference = expected.scalars
        var mismatches = 0
        for (m, name) in manifest.lookupColormaps.enumerated() {
            let map = try Colormap.parse(name)
            for (r, range) in [(Float(-1), Float(1)), (0, 1)].enumerated() {
                for (k, v) in values.enumerated() {
                    let c = map.color(of: v, range: (range.0, range.1))
                    let o = ((m * 2 + r) * values.count + k) * 3
                    if [c.red, c.green, c.blue] != [UInt8(reference[o]), UInt8(reference[o + 1]), UInt8(reference[o + 2])] {
                        mismatches += 1
                        if mismatches < 5 { XCTFail("\(name) range \(range) value \(v)") }
                    }
                }
            }
        }
        XCTAssertEqual(mismatches, 0)
    }

    func testDefaultsBySign() {
        XCTAssertEqual(VisualizationSign.all.defaultColormap.name, "RdWhGn")
        XCTAssertEqual(VisualizationSign.positive.defaultColormap.name, "Greens")
        XCTAssertEqual(VisualizationSign.negative.defaultColormap.name, "Reds")
        XCTAssertEqual(VisualizationSign.absoluteValue.defaultColormap.name, "Blues")
        XCTAssertTrue(VisualizationSign.all.valueRange == (-1, 1))
        XCTAssertTrue(VisualizationSign.negative.valueRange == (0, 1))
        let rdwhgn = Colormap.redWhiteGreen
        XCTAssertTrue(rdwhgn[0] == (255, 0, 0) && rdwhgn[255] == (0, 128, 0), "\(rdwhgn[0]) \(rdwhgn[255])")
    }

    func testParsingAndErrors() throws {
        XCTAssertEqual(try Colormap.parse("greens").name, "Greens")
        XCTAssertEqual(try Colormap.parse("Blues_r").table, try Colormap.parse("Blues").reversed.table)
        XCTAssertEqual(try Colormap.parse("#000,#fff").table, try Colormap.parse("0:black,1:white").table)
        let bad = ["nosuchmap", "0:#ffffff,0.5:#zzzzzz,1:#000000", "0.1:#ffffff,1:#000000", "0:#fff,0.7:#000,0.5:#fff,1:#000",
                   "0:#ffffff", "0:#fff,x:#000,1:#fff", "#12345,#000000"]
        for spec in bad {
            XCTAssertThrowsError(try Colormap.parse(spec), spec) { error in
                XCTAssertEqual((error as? ElucidateError)?.kind, .invalidArgument)
                XCTAssertTrue("\(error)".contains(spec), "\(error)")
            }
        }
    }
}
