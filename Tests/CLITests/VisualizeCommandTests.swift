import Elucidate
import Foundation
import TestSupport
import XCTest

/// `elucidate visualize` end to end: the built binary on the committed fixtures.
final class VisualizeCommandTests: TemporaryFolderTestCase {
    let attr = fixtureURL("visualization/snapshot_attr.npy").path
    let photo = fixtureURL("visualization/snapshot_photo.png").path

    private func snapshot(_ name: String) throws -> Canvas {
        try PNGWriter.read(fixtureURL("visualization/snapshots/\(name).png"))
    }

    /// The command draws what the library draws: the committed snapshots.
    func testDrawsTheSnapshots() throws {
        var result = try runElucidate(["visualize", attr, "--image", photo, "--preset", "none",
                                       "--panels", "blended-heat-map:absolute-value", "--alpha-overlay", "0.8",
                                       "--outlier-perc", "10", "--scale", "2", "--out", path("a.png")])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stderr, "")
        XCTAssertEqual(try PNGWriter.read(URL(fileURLWithPath: path("a.png"))),
                       try snapshot("alpha0.8.outlier10.scale2.blended.absolute-value"))

        result = try runElucidate(["visualize", attr, "--image", photo, "--preset", "none", "--colorbar", "--scale", "4",
                                   "--panels", "original-image:all,heat-map:all,blended-heat-map:positive,masked-image:negative",
                                   "--titles", "original,heat map\\, all,blended\\, positive,masked\\, negative",
                                   "--title", "Snapshot: 4 views, scale 4", "--out", path("f.png")])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try PNGWriter.read(URL(fileURLWithPath: path("f.png"))), try snapshot("figure.colorbar.titles"))

        result = try runElucidate(["visualize", attr, "--panels", "heat-map:positive", "--cmap", "0:#ffffff,0.25:#000000,1:#000000",
                                   "--outlier-perc", "1", "--colorbar", "--scale", "6", "--out", path("s.png")])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try PNGWriter.read(URL(fileURLWithPath: path("s.png"))), try snapshot("seed-cmap.heat-map.positive"))

        result = try runElucidate(["visualize", attr, "--panels", "heat-map:all", "--cmap", "viridis", "--scale", "3",
                                   "--resample", "bilinear", "--out", path("b.png")])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try PNGWriter.read(URL(fileURLWithPath: path("b.png"))), try snapshot("bilinear3.viridis.heat-map.all"))
    }

    /// An input tensor is de-normalised with the preset: the photo's own pixels come back.
    func testInputTensorIsShownAsRealPixels() throws {
        let image = try ImageDecoder.load(URL(fileURLWithPath: photo))
        for preset in [PreprocessingPreset.torchvision, .none] {
            let tensor = try Preprocessor(preset: .none).tensor(from: image)
            var x = tensor
            if preset == .torchvision {  // normalise by hand, as the model input would be
                let mean = preset.mean, std = preset.std
                x.withUnsafeMutableBufferPointer { v in
                    for c in 0..<3 { for i in 0..<1024 { v[c * 1024 + i] = (v[c * 1024 + i] - mean[c]) / std[c] } }
                }
            }
            let input = path("x-\(preset.rawValue).npy")
            try NPY.write(x, to: URL(fileURLWithPath: input))
            let out = path("o-\(preset.rawValue).png")
            let result = try runElucidate(["visualize", attr, "--input-tensor", input, "--preset", preset.rawValue,
                                           "--panels", "original-image:all", "--out", out])
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertEqual(try ImageDecoder.load(URL(fileURLWithPath: out)), image, preset.rawValue)
        }
    }

    func testNormalizedMapOutput() throws {
        let result = try runElucidate(["visualize", attr, "--panels", "heat-map:all,heat-map:negative", "--outlier-perc", "10",
                                       "--normalized-map", path("n.npy"), "--out", path("n.png")])
        XCTAssertEqual(result.status, 0, result.stderr)
        let maps = try NPY.readFloat32(URL(fileURLWithPath: path("n.npy")))
        XCTAssertEqual(maps.shape, [2, 32, 32])
        let map = try AttributionMap(summingChannelsOf: NPY.readFloat32(URL(fileURLWithPath: attr)))
        XCTAssertEqual(Array(maps.scalars[0..<1024]), map.normalized(sign: .all, outlierPercentage: 10).map.values)
        XCTAssertEqual(Array(maps.scalars[1024...]), map.normalized(sign: .negative, outlierPercentage: 10).map.values)
    }

    func testBlankMapWarns() throws {
        let zero = path("zero.npy")
        try NPY.write(Tensor(zeros: [3, 8, 8]), to: URL(fileURLWithPath: zero))
        let result = try runElucidate(["visualize", zero, "--panels", "heat-map:positive", "--out", path("z.png")])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stderr, "elucidate: warning: the attribution map is all zero: sign positive draws a blank map\n")
        XCTAssertEqual(try PNGWriter.read(URL(fileURLWithPath: path("z.png"))),
                       Canvas(width: 8, height: 8, red: 247, green: 252, blue: 245))
    }

    /// Every bad input is one `elucidate: …` line on stderr, a non-zero exit, and no file.
    func testErrors() throws {
        let textFile = path("notes.txt")
        try "hello".write(toFile: textFile, atomically: true, encoding: .utf8)
        let out = path("never.png")
        let cases: [([String], String)] = [
            (["visualize", attr, "--image", photo, "--preset", "none", "--panels", "masked-image:all", "--out", out],
             "masked-image cannot show sign 'all'"),
            (["visualize", attr, "--panels", "alpha-scaling:all", "--image", photo, "--out", out], "alpha-scaling cannot show sign 'all'"),
            (["visualize", attr, "--panels", "original-image:all", "--out", out],
             "the original-image view needs the photo: give --image IMAGE or --input-tensor X.npy"),
            (["visualize", attr, "--panels", "heat-map:sideways", "--out", out], "unknown sign 'sideways'"),
            (["visualize", attr, "--cmap", "nosuch", "--out", out], "unknown colormap 'nosuch'"),
            (["visualize", attr, "--cmap", "0:#fff,0.5:#zz0000,1:#000", "--out", out], "'#zz0000' in colormap"),
            (["visualize", attr, "--outlier-perc", "120", "--out", out], "outlier percentage must be between 0 and 100"),
            (["visualize", attr, "--alpha-overlay", "2", "--out", out], "overlay opacity must be between 0 and 1"),
            (["visualize", attr, "--scale", "0", "--out", out], "scale must be between 1 and 64"),
            (["visualize", attr, "--panels", "heat-map:all,heat-map:positive", "--titles", "one", "--out", out],
             "--titles gives 1 title for 2 views"),
            (["visualize", attr, "--image", photo, "--input-tensor", attr, "--out", out], "give --image or --input-tensor, not both"),
            (["visualize", attr, "--index", "3", "--out", out], "\(attr): item 3 does not exist"),
            (["visualize", path("missing.npy"), "--out", out], "\(path("missing.npy")): no such file"),
            (["visualize", textFile, "--out", out], "\(textFile): not a .npy file"),
            (["visualize", attr, "--image", textFile, "--panels", "original-image:all", "--out", out], "\(textFile): not a JPEG or PNG image"),
            (["visualize", attr, "--image", photo, "--panels", "original-image:all", "--out", out],
             "\(photo): is 224×224 pixels after torchvision preprocessing but the attributions in \(attr) are 32×32"),
            (["visualize", attr, "--out", attr], "\(attr): refusing to overwrite an input file"),
            (["visualize", attr, "--image", photo, "--preset", "none", "--panels", "original-image:all", "--out", photo],
             "\(photo): refusing to overwrite an input file"),
            (["visualize", attr, "--out", path("no/such/folder/x.png")], "does not exist"),
            (["visualize", attr, "--out", out, "--normalized-map", out], "the picture and the normalised map cannot be the same file"),
        ]
        for (arguments, expected) in cases {
            let result = try runElucidate(arguments)
            XCTAssertNotEqual(result.status, 0, arguments.joined(separator: " "))
            XCTAssertTrue(result.stderr.hasPrefix("elucidate: "), result.stderr)
            XCTAssertTrue(result.stderr.contains(expected), "expected '\(expected)' in: \(result.stderr)")
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), arguments.joined(separator: " "))
        }
        let bad = path("nan.npy")
        try NPY.write(Tensor(shape: [1, 2, 2], values: [1, .nan, 0, 2]), to: URL(fileURLWithPath: bad))
        let result = try runElucidate(["visualize", bad, "--out", out])
        XCTAssertEqual(result.stderr, "elucidate: \(bad): the attributions of item 0 contain NaN or infinite values\n")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".tmp") }, [])
        XCTAssertEqual(try NPY.readFloat32(URL(fileURLWithPath: attr)).shape, [1, 3, 32, 32])
    }
}
