import ArgumentParser
import Elucidate
import Foundation

struct Visualize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw attributions as a PNG picture, as Captum's visualize_image_attr does.",
        discussion: """
            ATTR.npy holds float32 attributions (N,C,H,W), (C,H,W) or (H,W); channels are summed. \
            A layer's map (N,C,h,w) (grad-cam and the CAMs' C=1, a layer method's C channels) is summed over channels \
            and drawn bilinearly upsampled to the photo. \
            The photo is --image (decoded, resized and cropped like --preset, shown as its real pixels) \
            or --input-tensor (the model input, de-normalised with --preset's mean/std; default torchvision, \
            none for a tensor already in [0,1]). Heat-map views need no photo. One view without title or \
            colorbar is exactly the picture at the map's resolution times --scale.

            Example: elucidate visualize attr.npy --image cat.jpg --out cat.png \
            --panels original-image:all,heat-map:positive,blended-heat-map:absolute-value --colorbar --scale 2
            """)

    @Argument(help: ArgumentHelp("Attributions, a float32 .npy file.", valueName: "attr.npy"))
    var attributions: String

    @Option(name: .long, help: "The photo: a JPEG or PNG image.")
    var image: String?

    @Option(name: .customLong("input-tensor"), help: "The photo as the model's input tensor, a float32 .npy (N,3,H,W) or (3,H,W).")
    var inputTensor: String?

    @Option(name: .long, help: "Preprocessing of the photo: torchvision (default), fastai or none.")
    var preset: PreprocessingPreset?

    @Option(name: .long, help: ArgumentHelp(
        "With --image: EXIF orientation ignore (default: as stored) or apply (as a photo viewer shows it); use the explain run's.",
        valueName: "rule"))
    var exif: ExifRule?

    @Option(name: .long, help: "The item of the batch to draw (of the attributions and of the input tensor).")
    var index: Int = 0

    @Option(name: .long, help: ArgumentHelp("The PNG file to write.", valueName: "out.png"))
    var out: String

    @OptionGroup var visualization: VisualizationOptions

    func validate() throws {
        if image != nil && inputTensor != nil {
            throw ValidationError("give --image or --input-tensor, not both")
        }
        if index < 0 { throw ValidationError("--index must be at least 0") }
        if exif != nil && image == nil { throw ValidationError("--exif applies only to --image") }
        if image == nil && inputTensor == nil, let panel = visualization.firstViewNeedingPhoto {
            throw ValidationError("the \(panel.method.rawValue) view needs the photo: give --image IMAGE or --input-tensor X.npy")
        }
    }

    func run() throws {
        let attributionsURL = URL(fileURLWithPath: attributions)
        // Both outputs are checked before anything is read or drawn, so that none is written
        // unless all can be.
        try OutputFiles.check(visualization.outputs(picture: out, option: "--out"),
                              inputs: [attributionsURL] + [image, inputTensor].compactMap { $0.map { URL(fileURLWithPath: $0) } },
                              sameFileMessage: VisualizationOptions.sameFileMessage)
        let tensor = try NPY.readFloat32(attributionsURL)
        let map: AttributionMap
        do { map = try AttributionMap(summingChannelsOf: tensor, index: index) } catch { throw error.at(attributions) }

        var inputs = [attributionsURL]
        var photo: RGBImage?
        var photoPath: String?
        if let image {
            let url = URL(fileURLWithPath: image)
            inputs.append(url)
            try requireRegularFile(url, expected: "a JPEG or PNG image")
            if exif == .apply {
                let turned = try ImageDecoder.load(url, exif: .apply)
                do { photo = try Preprocessor(preset: preset ?? .torchvision).prepare(turned) } catch { throw error.at(image) }
            } else {
                photo = try VisualizationPhoto.load(url, preset: preset ?? .torchvision)
            }
            photoPath = image
        } else if let inputTensor {
            let url = URL(fileURLWithPath: inputTensor)
            inputs.append(url)
            let input = try NPY.readFiniteFloat32(url, what: "the input tensor")
            do { photo = try VisualizationPhoto.denormalized(input, preset: preset ?? .torchvision, index: index) } catch {
                throw error.at(inputTensor)
            }
            photoPath = inputTensor
        }
        // A layer's map (N,C,h,w) — a CAM's C=1, a layer method's C>1 — has another resolution
        // than the photo and another channel count than its 3: the library sums its channels and
        // draws that map bilinearly upsampled to the photo. An input-shaped (N,3,H,W) array of
        // another size was made with another preset or EXIF rule: refused with the likely cause.
        let layerMap = photo.map { PictureSettings.isLayerMap(tensor, photoHeight: $0.height, photoWidth: $0.width) } == true
            && tensor.shape[1] != 3
        if let photo, let photoPath, !layerMap, photo.width != map.width || photo.height != map.height {
            let how = image != nil ? " after \((preset ?? .torchvision).rawValue) preprocessing" : ""
            throw ElucidateError(.invalidArgument,
                "is \(photo.width)×\(photo.height) pixels\(how) but the attributions in \(attributions) are \(map.width)×\(map.height)"
                + (image == nil ? "" : photo.width == map.height && photo.height == map.width && exif != .apply
                    ? " (were they made with --exif apply? give it here too)" : " (use the --preset the model used)"), path: photoPath)
        }
        let figure = try visualization.figure(tensor, index: index, photo: photo)
        try visualization.write(figure, to: out, protectedInputs: inputs)
        try StandardOutput.write("\(TerminalText.escaped(out)): \(figure.canvas.width)×\(figure.canvas.height) pixels\n")
    }
}
