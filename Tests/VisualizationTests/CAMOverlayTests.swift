import Elucidate
import Foundation
import TestSupport
import XCTest

/// `CAMOverlay` against pytorch-grad-cam's `show_cam_on_image` (`Tests/Fixtures/cam`): OpenCV's
/// JET table and the Grad-CAM overlay of the ResNet34 golden case.
final class CAMOverlayTests: XCTestCase {
    /// The raw bytes of a little-endian uint8 .npy of `count` elements (its last `count` bytes).
    func uint8s(_ name: String, count: Int) throws -> [UInt8] {
        let data = try Data(contentsOf: fixtureURL("cam/\(name)"))
        XCTAssertTrue(String(decoding: data.prefix(128), as: UTF8.self).contains("'|u1'"), name)
        return [UInt8](data.suffix(count))
    }

    func testJetTableIsOpenCVs() throws {
        XCTAssertEqual(CAMOverlay.openCVJet, try uint8s("cv2_colormap_jet.npy", count: 768))
    }

    func testOverlayMatchesShowCamOnImage() throws {
        let image = try NPY.readFloat32(fixtureURL("cam/r34_overlay_image.npy"))
        XCTAssertEqual(image.shape, [224, 224, 3])
        let final = try NPY.readFloat32(fixtureURL("cam/r34_grad_cam_layer4_final.npy"))
        let expected = try uint8s("r34_grad_cam_layer4_overlay.npy", count: 224 * 224 * 3)
        let overlay = CAMOverlay.showCAMOnImage(image: image.scalars, mask: final.scalars, width: 224, height: 224)
        let differences = zip(overlay.pixels, expected).map { abs(Int($0) - Int($1)) }
        let off = differences.filter { $0 > 0 }.count
        print("cam overlay: \(off) of \(differences.count) levels differ, largest \(differences.max() ?? 0)")
        XCTAssertLessThanOrEqual(differences.max() ?? 0, 1)
    }
}
