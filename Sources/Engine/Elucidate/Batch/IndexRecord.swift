import Foundation

/// One line of a batch run's index (`index.jsonl`, `index-I-of-N.jsonl`): what happened to
/// one input. Absent values are left out of the line.
public struct IndexRecord: Codable, Sendable, Equatable {
    /// The input's path as given (for a manifest entry, resolved against the manifest's folder).
    public var input: String
    /// The attributions file, relative to the output folder (absent for predict and on error).
    public var output: String?
    /// The picture, relative to the output folder, when one was drawn.
    public var picture: String?
    /// The class explained (absent for predict unless the manifest named one).
    public var target: Int?
    /// The explained class's label, when the model has labels.
    public var targetLabel: String?
    /// The class the model predicts.
    public var predicted: Int?
    /// The predicted class's label, when the model has labels.
    public var predictedLabel: String?
    /// Softmax probability of the predicted class.
    public var probability: Float?
    /// The method's convergence delta, for methods with one (Integrated Gradients, …).
    public var convergenceDelta: Float?
    /// Wall-clock seconds spent on the input (its share of its batch's time).
    public var seconds: Double?
    /// One line saying why the input failed; then there is no output.
    public var error: String?

    /// A record for `input` with every other field absent.
    public init(input: String) { self.input = input }

    /// The files the record names, relative to the output folder.
    public var files: [String] { [output, picture].compactMap { $0 } }

    /// The record as one line of JSON (sorted keys, no newline inside, none at the end).
    public func jsonLine() throws(ElucidateError) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do { return String(decoding: try encoder.encode(self), as: UTF8.self) } catch {
            throw ElucidateError(.internalFailure, "cannot encode an index record: \(error)")
        }
    }

    /// The record on one line of JSON, or nil for a line that is not one (a line cut short
    /// by a crash).
    public init?(jsonLine line: Substring) {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        guard let record = try? decoder.decode(IndexRecord.self, from: Data(line.utf8)) else { return nil }
        self = record
    }
}
