import ElucidateCore

/// One row of maps side by side, each under its caption: the figure of Adebayo et al.'s
/// sanity check (the original map, then the map after each stage of randomisation).
public enum MapStrip {
    /// The maps (`[C, H, W]` or `[1, C, H, W]`, all of one H×W) as a strip: each map is summed
    /// over channels, its absolute value min-max scaled to [0, 1] on its own (as the paper shows
    /// them) and drawn with `colormap` (default `gray`), enlarged by whole pixels to about
    /// `cellSize` on its longer side, under its caption (cut to fit).
    public static func draw(_ maps: [(caption: String, map: Tensor)], cellSize: Int = 96,
                            colormap: Colormap = Colormap.named("gray")!) -> Canvas {
        guard let first = maps.first else { return Canvas(width: 1, height: 1) }
        let (height, width) = (first.map.shape[first.map.rank - 2], first.map.shape[first.map.rank - 1])
        let scale = max(1, cellSize / max(height, width))
        let (cellWidth, cellHeight) = (width * scale, height * scale)
        let gap = 6, captionHeight = BitmapFont.cellHeight + 4
        var canvas = Canvas(width: gap + maps.count * (cellWidth + gap), height: captionHeight + cellHeight + gap + 2)
        for (column, entry) in maps.enumerated() {
            let left = gap + column * (cellWidth + gap)
            BitmapFont.draw(BitmapFont.fitting(entry.caption, maximumWidth: cellWidth), on: &canvas, x: left, y: 3)
            let plane = height * width
            let values = entry.map.scalars
            var magnitudes = [Float](repeating: 0, count: plane)
            for (index, value) in values.enumerated() { magnitudes[index % plane] += value }
            magnitudes = magnitudes.map(abs)
            let low = magnitudes.min() ?? 0, high = magnitudes.max() ?? 0
            for y in 0..<height {
                for x in 0..<width {
                    let value = high > low ? (magnitudes[y * width + x] - low) / (high - low) : 0
                    let colour = colormap[Colormap.index(ofNormalized: value)]
                    canvas.fill(x: left + x * scale, y: captionHeight + y * scale, width: scale, height: scale,
                                red: colour.red, green: colour.green, blue: colour.blue)
                }
            }
        }
        return canvas
    }
}
