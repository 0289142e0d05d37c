//! Binary morphology and connected areas on the detector's grid.

/// 3x3 opening (erosion then dilation, 4-neighbourhood cross): removes changed pixels without
/// changed neighbours (noise) and keeps areas at least 3 cells across. `tmp` is scratch space.
pub fn open(mask: &mut [bool], tmp: &mut Vec<bool>, (w, h): (usize, usize)) {
    tmp.clear();
    tmp.resize(w * h, false);
    // Erode: a cell stays when it and its 4 neighbours are set (edges count as set).
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            tmp[i] = mask[i]
                && (x == 0 || mask[i - 1])
                && (x + 1 == w || mask[i + 1])
                && (y == 0 || mask[i - w])
                && (y + 1 == h || mask[i + w]);
        }
    }
    // Dilate: a cell is set when it or one of its 4 neighbours is.
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            mask[i] = tmp[i]
                || (x > 0 && tmp[i - 1])
                || (x + 1 < w && tmp[i + 1])
                || (y > 0 && tmp[i - w])
                || (y + 1 < h && tmp[i + w]);
        }
    }
}

/// Cells of the largest 4-connected area of `mask`. `stack` and `seen` are scratch space.
pub fn largest_area(
    mask: &[bool],
    (w, h): (usize, usize),
    stack: &mut Vec<usize>,
    seen: &mut Vec<bool>,
) -> usize {
    seen.clear();
    seen.resize(w * h, false);
    let mut best = 0;
    for start in 0..w * h {
        if !mask[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.clear();
        stack.push(start);
        let mut area = 0;
        while let Some(i) = stack.pop() {
            area += 1;
            let (x, y) = (i % w, i / w);
            let mut visit = |j: usize| {
                if mask[j] && !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < w {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - w);
            }
            if y + 1 < h {
                visit(i + w);
            }
        }
        best = best.max(area);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(rows: &[&str]) -> (Vec<bool>, (usize, usize)) {
        let w = rows[0].len();
        let cells = rows
            .iter()
            .flat_map(|r| r.chars().map(|c| c == '#'))
            .collect();
        (cells, (w, rows.len()))
    }

    #[test]
    fn opening_removes_specks_and_keeps_blocks() {
        let (mut m, size) = grid(&[
            "#.......", //
            "....###.", //
            "..#.###.", //
            "....###.", //
            "........",
        ]);
        open(&mut m, &mut Vec::new(), size);
        let kept: usize = m.iter().filter(|&&c| c).count();
        assert!(!m[0] && !m[2 * 8 + 2], "specks removed");
        assert!(m[2 * 8 + 5], "the block's centre stays");
        assert!((5..=9).contains(&kept), "{kept}");
    }

    #[test]
    fn the_largest_connected_area_is_counted() {
        let (m, size) = grid(&[
            "##..#", //
            "##..#", //
            "....#", //
            "#...#",
        ]);
        assert_eq!(largest_area(&m, size, &mut Vec::new(), &mut Vec::new()), 4);
        let (m, size) = grid(&["#.#", ".#.", "#.#"]);
        assert_eq!(largest_area(&m, size, &mut Vec::new(), &mut Vec::new()), 1);
    }
}
