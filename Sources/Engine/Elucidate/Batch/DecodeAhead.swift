import Foundation

/// Decodes a run's images on a thread of its own, a bounded number ahead of the consumer,
/// so that reading and preprocessing overlap the model work. Items come out in input order.
final class DecodeAhead: @unchecked Sendable {
    /// One input with its decoded model input `[1, C, H, W]`, or why it could not be read.
    struct Item {
        var input: BatchInput
        var result: Result<ImageInput, ElucidateError>
    }

    private let condition = NSCondition()
    private var buffer: [Item] = []
    private var finished = false
    private var stopped = false
    private let capacity: Int

    /// Starts decoding `inputs` with `preset` and `exif`, at most `capacity` items ahead.
    init(_ inputs: [BatchInput], preset: PreprocessingPreset, exif: ExifRule, capacity: Int) {
        self.capacity = max(1, capacity)
        let thread = Thread { [self] in
            for input in inputs {
                let result: Result<ImageInput, ElucidateError>
                do throws(ElucidateError) {
                    result = .success(try ImageInput(path: input.path, preset: preset, exif: exif))
                } catch {
                    result = .failure(error)
                }
                condition.lock()
                while buffer.count >= self.capacity && !stopped { condition.wait() }
                if stopped { condition.unlock(); return }
                buffer.append(Item(input: input, result: result))
                condition.broadcast()
                condition.unlock()
            }
            condition.lock()
            finished = true
            condition.broadcast()
            condition.unlock()
        }
        thread.name = "elucidate-decode"
        thread.start()
    }

    /// The next item without taking it, waiting for it; nil after the last.
    func peek() -> Item? {
        condition.lock()
        defer { condition.unlock() }
        while buffer.isEmpty && !finished { condition.wait() }
        return buffer.first
    }

    /// Takes the next item, waiting for it; nil after the last.
    func next() -> Item? {
        condition.lock()
        defer { condition.unlock() }
        while buffer.isEmpty && !finished { condition.wait() }
        guard !buffer.isEmpty else { return nil }
        condition.broadcast()
        return buffer.removeFirst()
    }

    /// Stops the decoding thread (after the image it is on).
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }
}
