import Elucidate
import Foundation
import TestSupport
import XCTest

/// Pictures, pixel for pixel: every method × sign against Captum's own drawing at 1:1, and
/// against committed snapshots (Elucidate's drawings, looked at by a person) for views and
/// figures. `ELUCIDATE_UPDATE_SNAPSHOTS=1 swift test --filter VisualizationSnapshotTests`
/// rewrites the snapshots; look at them before committing.
final class VisualizationSnapshotTests: XCTestCase {
    static let combinations: [(VisualizationMethod, VisualizationSign)] = VisualizationMethod.allCases.filter { $0 != .camOverlay }.flatMap { m in  // cam-overlay: CAMOverlayTests
        VisualizationSign.allCases.compactMap { s in (s == .all && !m.acceptsSignAll) ? nil : (m, s) }
    }

    var photo: RGBImage!
    var attributions: Tensor!

    override func setUpWithError() throws {
        photo = try ImageDecoder.load(fixtureURL("visualization/snapshot_photo.png"))
        attributions = try NPY.readFloat32(fixtureURL("visualization/snapshot_attr.npy"))
        XCTAssertEqual(attributions.shape, [1, 3, 32, 32])
    }

    private func view(_ method: VisualizationMethod, _ sign: VisualizationSign,
                      style: VisualizationStyle = VisualizationStyle()) throws -> Canvas {
        try AttributionFigure.draw(attributions: attributions, photo: photo,
                                   panels: [VisualizationPanel(method: method, sign: sign)], style: style).canvas
    }

    /// Captum's `visualize_image_attr` drawn by matplotlib (Agg) into a 32×32-pixel axes
    /// gives the same bytes; alpha-scaling, composited there over white, within one level.
    func testViewsMatchCaptumPixelForPixel() throws {
        for (method, sign) in Self.combinations {
            let ours = try view(method, sign)
            let captum = try ImageDecoder.load(fixtureURL("visualization/captum_views/\(method.rawValue).\(sign.rawValue).png"))
            XCTAssertEqual(ours.width, captum.width)
            XCTAssertEqual(ours.height, captum.height)
            var worst = 0
            for i in 0..<(ours.width * ours.height) {
                let a = ours.pixels[i * 4 + 3]
                for c in 0..<3 {
                    let drawn = Canvas.blendOverOpaque(source: ours.pixels[i * 4 + c], destination: 255, alpha: a)
                    worst = max(worst, abs(Int(drawn) - Int(captum.pixels[i * 3 + c])))
                }
            }
            XCTAssertLessThanOrEqual(worst, method == .alphaScaling ? 1 : 0, "\(method.rawValue):\(sign.rawValue)")
        }
    }

    struct Snapshot {
        let name: String
        let panels: [VisualizationPanel]
        var style = VisualizationStyle()
    }

    static var snapshots: [Snapshot] {
        var list = combinations.map { m, s in
            Snapshot(name: "\(m.rawValue).\(s.rawValue)", panels: [VisualizationPanel(method: m, sign: s)])
        }
        var figure = VisualizationStyle()
        figure.showColorbar = true
        figure.scale = 4
        figure.title = "Snapshot: 4 views, scale 4"
        list.append(Snapshot(name: "figure.colorbar.titles", panels: [
            VisualizationPanel(method: .originalImage, sign: .all, title: "original"),
            VisualizationPanel(method: .heatMap, sign: .all, title: "heat map, all"),
            VisualizationPanel(method: .blendedHeatMap, sign: .positive, title: "blended, positive"),
            VisualizationPanel(method: .maskedImage, sign: .negative, title: "masked, negative"),
        ], style: figure))
        var small = VisualizationStyle()
        small.showColorbar = true
        list.append(Snapshot(name: "figure.small.colorbar", panels: [
            VisualizationPanel(method: .heatMap, sign: .absoluteValue),
            VisualizationPanel(method: .alphaScaling, sign: .positive),
        ], style: small))
        var seed = VisualizationStyle()
        seed.colormap = try! Colormap.parse("0:#ffffff,0.25:#000000,1:#000000")
        seed.outlierPercentage = 1
        seed.showColorbar = true
        seed.scale = 6
        list.append(Snapshot(name: "seed-cmap.heat-map.positive", panels: [VisualizationPanel(method: .heatMap, sign: .positive)],
                             style: seed))
        var bilinear = VisualizationStyle()
        bilinear.scale = 3
        bilinear.resampling = .bilinear
        bilinear.colormap = Colormap.named("viridis")
        list.append(Snapshot(name: "bilinear3.viridis.heat-map.all", panels: [VisualizationPanel(method: .heatMap, sign: .all)],
                             style: bilinear))
        var alpha = VisualizationStyle()
        alpha.scale = 2
        alpha.alphaOverlay = 0.8
        alpha.outlierPercentage = 10
        list.append(Snapshot(name: "alpha0.8.outlier10.scale2.blended.absolute-value",
                             panels: [VisualizationPanel(method: .blendedHeatMap, sign: .absoluteValue)], style: alpha))
        return list
    }

    func testSnapshots() throws {
        let update = ProcessInfo.processInfo.environment["ELUCIDATE_UPDATE_SNAPSHOTS"] == "1"
        let folder = fixtureURL("visualization/snapshots")
        if update { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) }
        let failures = try makeTemporaryDirectory("elucidate-snapshots")
        var failed = false
        for snapshot in Self.snapshots {
            let figure = try AttributionFigure.draw(attributions: attributions, photo: photo,
                                                    panels: snapshot.panels, style: snapshot.style)
            XCTAssertEqual(figure.warnings, [])
            let url = folder.appendingPathComponent("\(snapshot.name).png")
            if update {
                try figure.write(to: url)
                continue
            }
            let expected = try PNGWriter.read(url)
            if expected != figure.canvas {
                failed = true
                let actual = failures.appendingPathComponent("\(snapshot.name).png")
                try figure.write(to: actual)
                let differing = expected.width == figure.canvas.width && expected.height == figure.canvas.height
                    ? zip(expected.pixels, figure.canvas.pixels).filter { $0 != $1 }.count : -1
                XCTFail("\(snapshot.name): differs from the snapshot (\(differing) bytes; \(figure.canvas.width)×\(figure.canvas.height) "
                        + "vs \(expected.width)×\(expected.height)); drawn: \(actual.path)")
            }
        }
        if !failed { try? FileManager.default.removeItem(at: failures) }
    }

    /// One view without title or colorbar is exactly the picture at the chosen scale: no
    /// margin, no frame; nearest enlarges each pixel to a K×K block.
    func testBareViewHasNoMarginsAndScalesByBlocks() throws {
        let one = try view(.heatMap, .all)
        XCTAssertEqual([one.width, one.height], [32, 32])
        var style = VisualizationStyle()
        style.scale = 5
        let five = try view(.heatMap, .all, style: style)
        XCTAssertEqual([five.width, five.height], [160, 160])
        for y in 0..<160 {
            for x in 0..<160 {
                XCTAssertTrue(five[x, y] == one[x / 5, y / 5])
            }
        }
        style.resampling = .bilinear
        let smooth = try view(.heatMap, .all, style: style)
        XCTAssertEqual([smooth.width, smooth.height], [160, 160])
        // Pixel centres that fall on a map pixel's centre keep its colour exactly.
        XCTAssertTrue(smooth[2, 2] == one[0, 0] && smooth[157, 157] == one[31, 31] && smooth[52, 77] == one[10, 15])
    }

    func testBilinearIsExactOnUniformAndEdges() {
        var canvas = Canvas(width: 3, height: 2, red: 10, green: 20, blue: 30, alpha: 40)
        XCTAssertEqual(canvas.scaled(by: 4, resampling: .bilinear), Canvas(width: 12, height: 8, red: 10, green: 20, blue: 30, alpha: 40))
        canvas = Canvas(width: 2, height: 1, pixels: [0, 0, 0, 255, 200, 100, 50, 255])
        let scaled = canvas.scaled(by: 2, resampling: .bilinear)
        // Centres at input x = -0.25, 0.25, 0.75, 1.25: clamped, 1/4, 3/4, clamped.
        XCTAssertEqual(scaled.pixels.chunks(4).map { $0.first! }, [0, 50, 150, 200, 0, 50, 150, 200])
    }

    func testErrorsAndBlankMaps() throws {
        XCTAssertThrowsError(try view(.maskedImage, .all)) { error in
            XCTAssertTrue("\(error)".contains("masked-image cannot show sign 'all'"), "\(error)")
        }
        XCTAssertThrowsError(try VisualizationPanel.parse("alpha-scaling:all"))
        XCTAssertThrowsError(try VisualizationPanel.parse("heatmap:all")) { error in
            XCTAssertTrue("\(error)".contains("unknown visualization method 'heatmap'"), "\(error)")
        }
        XCTAssertThrowsError(try VisualizationPanel.parse("heat-map:both")) { error in
            XCTAssertTrue("\(error)".contains("unknown sign 'both'"), "\(error)")
        }
        XCTAssertEqual(try VisualizationPanel.parse("blended_heat_map:absolute_value"),
                       VisualizationPanel(method: .blendedHeatMap, sign: .absoluteValue))
        XCTAssertEqual(try VisualizationPanel.parse("masked-image"), VisualizationPanel(method: .maskedImage, sign: .absoluteValue))
        XCTAssertThrowsError(try AttributionFigure.draw(attributions: attributions, photo: nil,
                                                        panels: [VisualizationPanel(method: .originalImage)])) { error in
            XCTAssertTrue("\(error)".contains("needs the photo"), "\(error)")
        }
        let wrongSize = RGBImage(width: 31, height: 32, red: 1, green: 2, blue: 3)
        XCTAssertThrowsError(try AttributionFigure.draw(attributions: attributions, photo: wrongSize,
                                                        panels: [VisualizationPanel(method: .blendedHeatMap)])) { error in
            XCTAssertTrue("\(error)".contains("the photo is 31×32 pixels but the attribution map is 32×32"), "\(error)")
        }
        XCTAssertThrowsError(try AttributionFigure.draw(attributions: attributions, photo: photo, panels: []))
        for bad in [(0, 2.0, 0.5), (65, 2.0, 0.5), (1, 101.0, 0.5), (1, 2.0, 1.5)] {
            var style = VisualizationStyle()
            (style.scale, style.outlierPercentage, style.alphaOverlay) = bad
            XCTAssertThrowsError(try view(.heatMap, .all, style: style), "\(bad)") { error in
                XCTAssertEqual((error as? ElucidateError)?.kind, .invalidArgument)
            }
        }
        // Nothing negative: a blank map (white for Reds) and one warning, where Captum raises.
        let positive = Tensor(shape: [1, 2, 2], values: [0, 1, 2, 3])
        let figure = try AttributionFigure.draw(attributions: positive, photo: nil,
                                                panels: [VisualizationPanel(method: .heatMap, sign: .negative)])
        XCTAssertEqual(figure.warnings, ["the attribution map has no negative values: sign negative draws a blank map"])
        XCTAssertEqual(figure.canvas, Canvas(width: 2, height: 2, red: 255, green: 245, blue: 240))
        XCTAssertEqual(figure.normalizedMaps[0].values, [0, 0, 0, 0])
    }

    func testPNGRoundTripAndAtomicWrite() throws {
        let folder = try makeTemporaryDirectory("elucidate-png")
        defer { try? FileManager.default.removeItem(at: folder) }
        let rgba = try view(.alphaScaling, .positive)
        XCTAssertFalse(rgba.isOpaque)
        let rgb = try view(.blendedHeatMap, .all)
        XCTAssertTrue(rgb.isOpaque)
        for (name, canvas) in [("rgba.png", rgba), ("rgb.png", rgb)] {
            let url = folder.appendingPathComponent(name)
            try PNGWriter.write(canvas, to: url)
            XCTAssertEqual(try PNGWriter.read(url), canvas)
            let data = try Data(contentsOf: url)
            XCTAssertEqual(data[25], canvas.isOpaque ? 2 : 6, "PNG colour type")  // IHDR colour type byte
            XCTAssertEqual(try ImageDecoder.load(url).pixels, canvas.rgbPixels)
        }
        let input = folder.appendingPathComponent("input.npy")
        try NPY.write(attributions, to: input)
        XCTAssertThrowsError(try PNGWriter.write(rgb, to: input, protectedInputs: [input])) { error in
            XCTAssertTrue("\(error)".contains("refusing to overwrite an input file"), "\(error)")
        }
        XCTAssertEqual(try NPY.readFloat32(input).shape, [1, 3, 32, 32])
        XCTAssertThrowsError(try PNGWriter.write(rgb, to: folder.appendingPathComponent("missing/x.png")))
        XCTAssertThrowsError(try PNGWriter.encode(Canvas(width: 0, height: 3)))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".tmp") }
        XCTAssertEqual(leftovers, [])
    }

    func testTextAndFont() {
        XCTAssertEqual(BitmapFont.width(of: "abc"), 17)
        XCTAssertEqual(BitmapFont.width(of: "abc", scale: 2), 34)
        XCTAssertEqual(BitmapFont.fitting("a long title", maximumWidth: 40), "a lo..")
        var canvas = Canvas(width: 12, height: 10)
        BitmapFont.draw("-", on: &canvas, x: 0, y: 0)
        XCTAssertTrue(canvas[2, 3] == (0, 0, 0, 255) && canvas[0, 3] == (255, 255, 255, 255))
        var other = Canvas(width: 12, height: 10)
        BitmapFont.draw("\u{2212}", on: &other, x: 0, y: 0)
        XCTAssertEqual(canvas, other)
    }
}

private extension Array {
    func chunks(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
