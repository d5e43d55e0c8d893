import ElucidateAttribution
import ElucidateCore
import ElucidateImage

extension MethodRecipe {
    /// `lrp`'s options: `composite` (default epsilon-plus-flat, the composite Zennit's
    /// documentation recommends), `epsilon` (1e-6), `gamma` (0.25), `stabilizer` (1e-6) and
    /// ZBox's `low`/`high` ("a,b,c" per input channel, or one number), which default to the
    /// bounds of [0, 1] pixels after the model's preset normalisation, `(0 − mean) / std` and
    /// `(1 − mean) / std` — what Zennit's example passes for ImageNet models.
    static func lrpMethod(reading reader: inout OptionReader, recording recorded: inout [String: String],
                          batchSize: Int) throws(ElucidateError) -> @Sendable () throws(ElucidateError) -> MethodMaker {
        let composite = try reader.choice("composite", LRPComposite.self) ?? .epsilonPlusFlat
        let epsilon = try reader.float("epsilon", default: 1e-6)
        let gamma = try reader.float("gamma", default: 0.25)
        let stabilizer = try reader.float("stabilizer", default: 1e-6)
        for (name, value) in [("epsilon", epsilon), ("gamma", gamma), ("stabilizer", stabilizer)]
        where !(value >= 0) || !value.isFinite {
            throw ElucidateError(.invalidArgument, "--\(name) must be a finite number ≥ 0")
        }
        func bounds(_ name: String) throws(ElucidateError) -> [Float]? {
            guard let text = try reader.string(name) else { return nil }
            let values = text.split(separator: ",", omittingEmptySubsequences: false)
                .map { Float($0.trimmingCharacters(in: .whitespaces)) }
            guard !values.isEmpty, values.allSatisfy({ $0?.isFinite == true }) else {
                throw ElucidateError(.invalidArgument, "--\(name) must be a number or one per channel such as -2.1,-2.0,-1.8, got '\(text)'")
            }
            recorded[name] = text
            return values.map { $0! }
        }
        let low = try bounds("low"), high = try bounds("high")
        recorded["composite"] = composite.rawValue
        recorded["epsilon"] = String(epsilon)
        recorded["stabilizer"] = String(stabilizer)
        if composite == .epsilonGammaBox { recorded["gamma"] = String(gamma) }
        return {
            { inputs, preset throws(ElucidateError) in
                // A gray model's preset repeats its one mean and std over R, G, B.
                let channels = inputs.shape[1]
                let box = LRP.box(mean: preset.mean, std: preset.std)
                let fit = { (values: [Float]) in values.count == channels ? values : [values[0]] }
                let method = LRP(composite: composite, epsilon: epsilon, gamma: gamma, stabilizer: stabilizer,
                                 low: low ?? fit(box.low), high: high ?? fit(box.high), batchSize: batchSize)
                if composite == .epsilonGammaBox { try method.checkBounds(channels: channels) }  // before any work
                return method
            }
        }
    }
}
