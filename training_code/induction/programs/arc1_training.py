"""Programs for tasks of the ARC-AGI-1 training set, written in the grid DSL (``training_code.induction.dsl``).

Each entry maps a task id to the source text of a program that defines ``solve(grid)``; it uses only
the DSL's names and ``np`` (no imports), and reproduces every training and test pair of its task
(``tests/test_programs.py``). The texts are what a model learns to write, so they are short and plain.
"""

from __future__ import annotations

PROGRAMS: dict[str, str] = {
    # ---- whole-grid geometry ----------------------------------------------------------------------
    "3c9b0459": """
def solve(grid):
    return rotate(grid, 2)
""",
    "6150a2bd": """
def solve(grid):
    return rotate(grid, 2)
""",
    "67a3c6ac": """
def solve(grid):
    return flip_h(grid)
""",
    "68b16354": """
def solve(grid):
    return flip_v(grid)
""",
    "74dd1130": """
def solve(grid):
    return transpose(grid)
""",
    "9dfd6313": """
def solve(grid):
    return transpose(grid)
""",
    "ed36ccf7": """
def solve(grid):
    return rotate(grid, -1)
""",
    "25ff71a9": """
def solve(grid):
    return shift(grid, 1, 0)
""",
    "a79310a0": """
def solve(grid):
    return replace(shift(grid, 1, 0), 8, 2)
""",
    "a416b8f3": """
def solve(grid):
    return tile(grid, 1, 2)
""",
    "8eb1be9a": """
def solve(grid):
    top, _, bottom, _ = bbox(grid != 0)
    band = grid[top:bottom]
    return band[[(r - top) % band.shape[0] for r in range(grid.shape[0])]]
""",
    "4c4377d9": """
def solve(grid):
    return vconcat(flip_v(grid), grid)
""",
    "6d0aefbc": """
def solve(grid):
    return hconcat(grid, flip_h(grid))
""",
    "c9e6f938": """
def solve(grid):
    return hconcat(grid, flip_h(grid))
""",
    "6fa7a44f": """
def solve(grid):
    return vconcat(grid, flip_v(grid))
""",
    "8be77c9e": """
def solve(grid):
    return vconcat(grid, flip_v(grid))
""",
    "62c24649": """
def solve(grid):
    top = hconcat(grid, flip_h(grid))
    return vconcat(top, flip_v(top))
""",
    "67e8384a": """
def solve(grid):
    top = hconcat(grid, flip_h(grid))
    return vconcat(top, flip_v(top))
""",
    "3af2c5a8": """
def solve(grid):
    top = hconcat(grid, flip_h(grid))
    return vconcat(top, flip_v(top))
""",
    "46442a0e": """
def solve(grid):
    top = hconcat(grid, rotate(grid, 1))
    bottom = hconcat(rotate(grid, 3), rotate(grid, 2))
    return vconcat(top, bottom)
""",
    "7fe24cdd": """
def solve(grid):
    top = hconcat(grid, rotate(grid, 1))
    bottom = hconcat(rotate(grid, 3), rotate(grid, 2))
    return vconcat(top, bottom)
""",
    "f25ffba3": """
def solve(grid):
    return overlay(grid, flip_v(grid))
""",
    "496994bd": """
def solve(grid):
    return overlay(grid, flip_v(grid))
""",
    # ---- scaling and tiling -----------------------------------------------------------------------
    "c59eb873": """
def solve(grid):
    return upscale(grid, 2)
""",
    "9172f3a0": """
def solve(grid):
    return upscale(grid, 3)
""",
    "b91ae062": """
def solve(grid):
    return upscale(grid, count_colours(grid, exclude=[0]))
""",
    "ac0a08a4": """
def solve(grid):
    return upscale(grid, count_colours(grid, exclude=[0]))
""",
    "007bbfb7": """
def solve(grid):
    return upscale(grid != 0, 3) * tile(grid, 3, 3)
""",
    "cce03e0d": """
def solve(grid):
    return upscale(grid == 2, 3) * tile(grid, 3, 3)
""",
    "c3e719e8": """
def solve(grid):
    return upscale(grid == most_common_colour(grid), 3) * tile(grid, 3, 3)
""",
    "46f33fce": """
def solve(grid):
    return upscale(grid[1::2, 1::2], 4)
""",
    "f25fbde4": """
def solve(grid):
    return upscale(crop_to_content(grid), 2)
""",
    "5614dbcf": """
def solve(grid):
    return downscale(grid, 3, majority=True)
""",
    # ---- crops -----------------------------------------------------------------------------------
    "d10ecb37": """
def solve(grid):
    return grid[:2, :2]
""",
    "5bd6f4ac": """
def solve(grid):
    return grid[:3, 6:]
""",
    "2dee498d": """
def solve(grid):
    return split(grid, 3)[0]
""",
    "7b7f7511": """
def solve(grid):
    if grid.shape[1] > grid.shape[0]:
        return split(grid, 2)[0]
    return split(grid, 2, axis=0)[0]
""",
    "1cf80156": """
def solve(grid):
    return crop_to_content(grid)
""",
    "28bf18c6": """
def solve(grid):
    return tile(crop_to_content(grid), 1, 2)
""",
    "7468f01a": """
def solve(grid):
    return flip_h(crop_to_content(grid))
""",
    "a740d043": """
def solve(grid):
    return replace(crop_to_content(grid, background=1), 1, 0)
""",
    "be94b721": """
def solve(grid):
    biggest = max(objects(grid), key=lambda o: o.size)
    return biggest.patch
""",
    "1f85a75f": """
def solve(grid):
    biggest = max(objects(grid, 8), key=lambda o: o.size)
    return biggest.patch
""",
    "0b148d64": """
def solve(grid):
    rare = least_common_colour(grid, exclude=[0])
    return crop(grid, bbox(grid == rare))
""",
    "5117e062": """
def solve(grid):
    shape = [o for o in objects(grid, 8, multicolour=True) if 8 in o.colours][0]
    patch = shape.patch
    return replace(patch, 8, most_common_colour(patch, exclude=[0, 8]))
""",
    "90c28cc7": """
def solve(grid):
    return dedupe(crop_to_content(grid))
""",
    "746b3537": """
def solve(grid):
    return dedupe(grid)
""",
    "8efcae92": """
def solve(grid):
    shapes = objects(grid, multicolour=True)
    return max(shapes, key=lambda o: np.sum(o.patch == 2)).patch
""",
    # ---- colours ----------------------------------------------------------------------------------
    "0d3d703e": """
def solve(grid):
    return recolour(grid, {1: 5, 2: 6, 3: 4, 4: 3, 5: 1, 6: 2, 8: 9, 9: 8})
""",
    "c8f0f002": """
def solve(grid):
    return replace(grid, 7, 5)
""",
    "b1948b0a": """
def solve(grid):
    return replace(grid, 6, 2)
""",
    "f76d97a5": """
def solve(grid):
    colour = colours(grid, exclude=[5])[0]
    return np.where(grid == 5, colour, 0)
""",
    "9565186b": """
def solve(grid):
    common = most_common_colour(grid)
    return np.where(grid == common, common, 5)
""",
    "aabf363d": """
def solve(grid):
    out = grid.copy()
    colour = out[-1, 0]
    out[-1, 0] = 0
    out[out != 0] = colour
    return out
""",
    "5582e5ca": """
def solve(grid):
    return new_grid(*grid.shape, most_common_colour(grid))
""",
    "d631b094": """
def solve(grid):
    colour = colours(grid, exclude=[0])[0]
    return new_grid(1, int(np.sum(grid != 0)), colour)
""",
    "44f52bb0": """
def solve(grid):
    return grid_of(1 if is_symmetric(grid, "h") else 7)
""",
    "27a28665": """
def solve(grid):
    answers = {"110101010": 1, "101010101": 2, "011011100": 3, "010111010": 6}
    pattern = "".join(str(int(v)) for v in (grid != 0).flatten())
    return grid_of(answers[pattern])
""",
    "d4469b4b": """
def solve(grid):
    patterns = {
        1: [[0, 5, 0], [5, 5, 5], [0, 5, 0]],
        2: [[5, 5, 5], [0, 5, 0], [0, 5, 0]],
        3: [[0, 0, 5], [0, 0, 5], [5, 5, 5]],
    }
    return grid_of(patterns[colours(grid, exclude=[0])[0]])
""",
    "a85d4709": """
def solve(grid):
    out = new_grid(*grid.shape)
    for r in range(grid.shape[0]):
        column = int(np.argmax(grid[r] == 5))
        out[r, :] = [2, 4, 3][column]
    return out
""",
    "25d8a9c8": """
def solve(grid):
    out = new_grid(*grid.shape)
    for r in range(grid.shape[0]):
        if count_colours(grid[r]) == 1:
            out[r, :] = 5
    return out
""",
    "794b24be": """
def solve(grid):
    out = new_grid(3, 3)
    spots = [(0, 0), (0, 1), (0, 2), (1, 1)]
    for r, c in spots[: int(np.sum(grid == 1))]:
        out[r, c] = 2
    return out
""",
    "f8b3ba0a": """
def solve(grid):
    ranked = list(colour_counts(grid, exclude=[0]))
    return grid_of(ranked[1:]).T
""",
    "6e02f1e3": """
def solve(grid):
    n = count_colours(grid)
    out = new_grid(3, 3)
    if n == 1:
        out[0, :] = 5
    elif n == 2:
        out[[0, 1, 2], [0, 1, 2]] = 5
    else:
        out[[0, 1, 2], [2, 1, 0]] = 5
    return out
""",
    # ---- halves combined by a rule -----------------------------------------------------------------
    "99b1bc43": """
def solve(grid):
    top, bottom = split(grid, 2, axis=0)
    return np.where((top != 0) ^ (bottom != 0), 3, 0)
""",
    "3428a4f5": """
def solve(grid):
    top, bottom = split(grid, 2, axis=0)
    return np.where((top != 0) ^ (bottom != 0), 3, 0)
""",
    "0520fde7": """
def solve(grid):
    left, right = split(grid, 2)
    return np.where((left != 0) & (right != 0), 2, 0)
""",
    "fafffa47": """
def solve(grid):
    top, bottom = split(grid, 2, axis=0)
    return np.where((top == 0) & (bottom == 0), 2, 0)
""",
    "6430c8c4": """
def solve(grid):
    top, bottom = split(grid, 2, axis=0)
    return np.where((top == 0) & (bottom == 0), 3, 0)
""",
    "94f9d214": """
def solve(grid):
    top, bottom = split(grid, 2, axis=0)
    return np.where((top == 0) & (bottom == 0), 2, 0)
""",
    "ce4f8723": """
def solve(grid):
    top, bottom = split(grid, 2, axis=0)
    return np.where((top != 0) | (bottom != 0), 3, 0)
""",
    "f2829549": """
def solve(grid):
    left, right = split(grid, 2)
    return np.where((left == 0) & (right == 0), 3, 0)
""",
    "1b2d62fb": """
def solve(grid):
    left, right = split(grid, 2)
    return np.where((left == 0) & (right == 0), 8, 0)
""",
    "dae9d2b5": """
def solve(grid):
    left, right = split(grid, 2)
    return np.where((left != 0) | (right != 0), 6, 0)
""",
    "e98196ab": """
def solve(grid):
    top, bottom = split(grid, 2, axis=0)
    return overlay(top, bottom)
""",
    "cf98881b": """
def solve(grid):
    first, second, third = split(grid, 3)
    return overlay(third, second, first)
""",
    "e3497940": """
def solve(grid):
    left, right = split(grid, 2)
    return overlay(left, flip_h(right))
""",
    # ---- objects ----------------------------------------------------------------------------------
    "3aa6fb7a": """
def solve(grid):
    out = grid.copy()
    for shape in objects(grid):
        top, left, bottom, right = shape.box
        out[top:bottom, left:right][~shape.shape] = 1
    return out
""",
    "d0f5fe59": """
def solve(grid):
    n = len(objects(grid, 8))
    return np.eye(n, dtype=np.uint8) * 8
""",
    "445eab21": """
def solve(grid):
    biggest = max(objects(grid), key=lambda o: o.height * o.width)
    return new_grid(2, 2, biggest.colour)
""",
    "6e82a1ae": """
def solve(grid):
    out = grid.copy()
    for shape in objects(grid):
        out = draw(out, shape, {4: 1, 3: 2, 2: 3}[shape.size])
    return out
""",
    "08ed6ac7": """
def solve(grid):
    out = grid.copy()
    bars = sorted(objects(grid), key=lambda o: -o.size)
    for rank, bar in enumerate(bars):
        out = draw(out, bar, rank + 1)
    return out
""",
    "ea32f347": """
def solve(grid):
    out = grid.copy()
    bars = sorted(objects(grid), key=lambda o: -o.size)
    for bar, colour in zip(bars, [1, 4, 2]):
        out = draw(out, bar, colour)
    return out
""",
    "a61f2674": """
def solve(grid):
    bars = sorted(objects(grid), key=lambda o: o.size)
    out = new_grid(*grid.shape)
    out = draw(out, bars[-1], 1)
    return draw(out, bars[0], 2)
""",
    "67385a82": """
def solve(grid):
    out = grid.copy()
    for shape in objects(grid):
        if shape.colour == 3 and shape.size >= 2:
            out = draw(out, shape, 8)
    return out
""",
    "aedd82e4": """
def solve(grid):
    out = grid.copy()
    for shape in objects(grid):
        if shape.size == 1:
            out = draw(out, shape, 1)
    return out
""",
    "d2abd087": """
def solve(grid):
    out = grid.copy()
    for shape in objects(grid):
        out = draw(out, shape, 2 if shape.size == 6 else 1)
    return out
""",
    "7f4411dc": """
def solve(grid):
    filled = grid != 0
    square = filled[:-1, :-1] & filled[1:, :-1] & filled[:-1, 1:] & filled[1:, 1:]
    covered = np.zeros_like(filled)
    for dr in (0, 1):
        for dc in (0, 1):
            covered[dr : dr + square.shape[0], dc : dc + square.shape[1]] |= square
    return np.where(covered, grid, 0)
""",
    "a87f7484": """
def solve(grid):
    axis = 0 if grid.shape[0] > grid.shape[1] else 1
    parts = split(grid, max(grid.shape) // min(grid.shape), axis)
    masks = ["".join(str(int(v)) for v in (p != 0).flatten()) for p in parts]
    return [p for p, m in zip(parts, masks) if masks.count(m) == 1][0]
""",
    "a3325580": """
def solve(grid):
    shapes = objects(grid)
    n = max(o.size for o in shapes)
    chosen = sorted([o for o in shapes if o.size == n], key=lambda o: o.left)
    out = new_grid(n, len(chosen))
    for i, shape in enumerate(chosen):
        out[:, i] = shape.colour
    return out
""",
    "f8ff0b80": """
def solve(grid):
    shapes = sorted(objects(grid, 8), key=lambda o: -o.size)
    return grid_of([o.colour for o in shapes]).T
""",
    "ce9e57f2": """
def solve(grid):
    out = grid.copy()
    for bar in objects(grid):
        for i in range(bar.height // 2):
            out[bar.bottom - 1 - i, bar.left] = 8
    return out
""",
    "810b9b61": """
def solve(grid):
    out = grid.copy()
    for shape in objects(grid):
        if enclosed(~shape.mask).any():
            out = draw(out, shape, 3)
    return out
""",
    "6c434453": """
def solve(grid):
    out = grid.copy()
    plus = grid_of([[0, 2, 0], [2, 2, 2], [0, 2, 0]])
    for shape in objects(grid):
        if shape.height == 3 and shape.width == 3 and shape.size == 8:
            out = paste(out, plus, shape.top, shape.left)
    return out
""",
    "3bdb4ada": """
def solve(grid):
    out = grid.copy()
    for bar in objects(grid):
        out[bar.top + 1, bar.left + 1 : bar.right : 2] = 0
    return out
""",
    # ---- filling ----------------------------------------------------------------------------------
    "00d62c1b": """
def solve(grid):
    return fill_enclosed(grid, 4)
""",
    "a5313dff": """
def solve(grid):
    return fill_enclosed(grid, 1)
""",
    "7b6016b9": """
def solve(grid):
    return replace(fill_enclosed(grid, 2), 0, 3)
""",
    "d5d6de2d": """
def solve(grid):
    return replace(fill_enclosed(grid, 3), 2, 0)
""",
    "bb43febb": """
def solve(grid):
    out = grid.copy()
    for shape in objects(grid):
        out = draw(out, interior(shape.mask), 2)
    return out
""",
    "50cb2852": """
def solve(grid):
    out = grid.copy()
    for shape in objects(grid):
        out = draw(out, interior(shape.mask), 8)
    return out
""",
    "4347f46a": """
def solve(grid):
    out = grid.copy()
    for shape in objects(grid):
        out = draw(out, interior(shape.mask), 0)
    return out
""",
    "694f12f3": """
def solve(grid):
    out = grid.copy()
    shapes = sorted(objects(grid), key=lambda o: o.size)
    out = draw(out, interior(shapes[0].mask), 1)
    return draw(out, interior(shapes[-1].mask), 2)
""",
    "b6afb2da": """
def solve(grid):
    out = grid.copy()
    for shape in objects(grid):
        out = draw(out, shape, 4)
        out = draw(out, interior(shape.mask), 2)
        top, left, bottom, right = shape.box
        out[[top, top, bottom - 1, bottom - 1], [left, right - 1, left, right - 1]] = 1
    return out
""",
    "6d75e8bb": """
def solve(grid):
    filled = fill_box(grid, bbox(grid != 0), 2)
    return np.where(grid != 0, grid, filled)
""",
    "60b61512": """
def solve(grid):
    out = grid.copy()
    for shape in objects(grid, 8):
        out = fill_box(out, shape.box, 7)
    return np.where(grid != 0, grid, out)
""",
    "32597951": """
def solve(grid):
    inside = fill_box(new_grid(*grid.shape), bbox(grid == 8), 1) == 1
    return np.where(inside & (grid == 1), 3, grid)
""",
    "56ff96f3": """
def solve(grid):
    out = grid.copy()
    for colour in colours(grid, exclude=[0]):
        out = fill_box(out, bbox(grid == colour), colour)
    return out
""",
    "e8593010": """
def solve(grid):
    out = grid.copy()
    for hole in components(grid == 0):
        out = draw(out, hole, {1: 3, 2: 2, 3: 1}[int(hole.sum())])
    return out
""",
    "6455b5f5": """
def solve(grid):
    out = grid.copy()
    regions = components(grid == 0)
    sizes = [int(r.sum()) for r in regions]
    for region, size in zip(regions, sizes):
        if size == max(sizes):
            out = draw(out, region, 1)
        elif size == min(sizes):
            out = draw(out, region, 8)
    return out
""",
    "4258a5f9": """
def solve(grid):
    return draw(grid, neighbours(grid == 5, 8), 1)
""",
    "dc1df850": """
def solve(grid):
    return draw(grid, neighbours(grid == 2, 8) & (grid == 0), 1)
""",
    "913fb3ed": """
def solve(grid):
    out = grid.copy()
    for colour, ring in [(3, 6), (8, 4), (2, 1)]:
        out = draw(out, neighbours(grid == colour, 8), ring)
    return out
""",
    "ce22a75a": """
def solve(grid):
    return draw(new_grid(*grid.shape), dilate(grid == 5, 8), 1)
""",
    "6f8cd79b": """
def solve(grid):
    return box_outline(grid, (0, 0, *grid.shape), 8)
""",
    "c1d99e64": """
def solve(grid):
    out = grid.copy()
    out[np.all(grid == 0, axis=1), :] = 2
    out[:, np.all(grid == 0, axis=0)] = 2
    return out
""",
    "d037b0a7": """
def solve(grid):
    out = grid.copy()
    for r in range(1, grid.shape[0]):
        out[r] = np.where(out[r] == 0, out[r - 1], out[r])
    return out
""",
    "1e0a9b12": """
def solve(grid):
    return gravity(grid, "down")
""",
    "3906de3d": """
def solve(grid):
    return gravity(grid, "up")
""",
    "d90796e8": """
def solve(grid):
    out = grid.copy()
    out[(grid == 3) & dilate(grid == 2, 4)] = 8
    out[(grid == 2) & dilate(grid == 3, 4)] = 0
    return out
""",
    "f5b8619d": """
def solve(grid):
    used = np.any(grid != 0, axis=0)
    out = grid.copy()
    out[:, used] = np.where(grid[:, used] == 0, 8, grid[:, used])
    return tile(out, 2, 2)
""",
    "c3f564a4": """
def solve(grid):
    return complete_period(grid, 0)
""",
    "0dfd9992": """
def solve(grid):
    return complete_period(grid, 0)
""",
    "29ec7d0e": """
def solve(grid):
    return complete_period(grid, 0)
""",
    "484b58aa": """
def solve(grid):
    return complete_period(grid, 0)
""",
    "3631a71a": """
def solve(grid):
    return complete_symmetry(grid, 9)
""",
    "b8825c91": """
def solve(grid):
    return complete_symmetry(grid, 4)
""",
    "9ecd008a": """
def solve(grid):
    return crop(complete_symmetry(grid, 0), bbox(grid == 0))
""",
    # ---- lines and patterns -----------------------------------------------------------------------
    "a699fb00": """
def solve(grid):
    out = grid.copy()
    for r, c in cells_of(grid, 1):
        if c + 2 < grid.shape[1] and grid[r, c + 2] == 1:
            out[r, c + 1] = 2
    return out
""",
    "623ea044": """
def solve(grid):
    out = grid.copy()
    (r, c), colour = cells_of(grid, grid.max())[0], grid.max()
    for direction in ["up-left", "up-right", "down-left", "down-right"]:
        out = draw_line(out, r, c, direction, colour)
    return out
""",
    "5c0a986e": """
def solve(grid):
    top, left, _, _ = bbox(grid == 1)
    out = draw_line(grid, top, left, "up-left", 1)
    _, _, bottom, right = bbox(grid == 2)
    return draw_line(out, bottom - 1, right - 1, "down-right", 2)
""",
    "97999447": """
def solve(grid):
    out = grid.copy()
    for r, c in zip(*np.nonzero(grid)):
        out[r, c + 1 :: 2] = 5
        out[r, c + 2 :: 2] = grid[r, c]
    return out
""",
    "d13f3404": """
def solve(grid):
    out = paste(new_grid(6, 6), grid, 0, 0)
    for r, c in zip(*np.nonzero(grid)):
        out = draw_line(out, r, c, "down-right", grid[r, c], stop_at_obstacle=False)
    return out
""",
    "dbc1a6ce": """
def solve(grid):
    out = grid.copy()
    ones = cells_of(grid, 1)
    for a in ones:
        for b in ones:
            if a < b and (a[0] == b[0] or a[1] == b[1]):
                out = connect(out, a, b, 8, only_background=True)
    return out
""",
    "253bf280": """
def solve(grid):
    out = grid.copy()
    eights = cells_of(grid, 8)
    for a in eights:
        for b in eights:
            if a < b and (a[0] == b[0] or a[1] == b[1]):
                out = connect(out, a, b, 3, only_background=True)
    return out
""",
    "ded97339": """
def solve(grid):
    out = grid.copy()
    eights = cells_of(grid, 8)
    for a in eights:
        for b in eights:
            if a < b and (a[0] == b[0] or a[1] == b[1]):
                out = connect(out, a, b, 8)
    return out
""",
    "40853293": """
def solve(grid):
    out = grid.copy()
    for colour in colours(grid, exclude=[0]):
        a, b = cells_of(grid, colour)
        if a[0] == b[0]:
            out = connect(out, a, b, colour)
    for colour in colours(grid, exclude=[0]):
        a, b = cells_of(grid, colour)
        if a[1] == b[1]:
            out = connect(out, a, b, colour)
    return out
""",
    "178fcbfb": """
def solve(grid):
    out = new_grid(*grid.shape)
    for r, c in cells_of(grid, 2):
        out[:, c] = 2
    for colour in [1, 3]:
        for r, c in cells_of(grid, colour):
            out[r, :] = colour
    return out
""",
    "e9614598": """
def solve(grid):
    (r1, c1), (r2, c2) = cells_of(grid, 1)
    r, c = (r1 + r2) // 2, (c1 + c2) // 2
    out = grid.copy()
    out[r, c - 1 : c + 2] = 3
    out[r - 1 : r + 2, c] = 3
    return out
""",
    "3ac3eb23": """
def solve(grid):
    out = grid.copy()
    for c in np.nonzero(grid[0])[0]:
        for r in range(1, grid.shape[0]):
            if r % 2 == 0:
                out[r, c] = grid[0, c]
            else:
                out[r, c - 1] = grid[0, c]
                out[r, c + 1] = grid[0, c]
    return out
""",
    "e9afcf9a": """
def solve(grid):
    out = grid.copy()
    out[0, 1::2] = grid[1, 0]
    out[1, 1::2] = grid[0, 0]
    return out
""",
    "bd4472b8": """
def solve(grid):
    out = grid.copy()
    for r in range(2, grid.shape[0]):
        out[r, :] = grid[0, (r - 2) % grid.shape[1]]
    return out
""",
    "feca6190": """
def solve(grid):
    n = 5 * count_colours(grid, exclude=[0])
    out = new_grid(n, n)
    for c in np.nonzero(grid[0])[0]:
        out[n - 1, c] = grid[0, c]
        out = draw_line(out, n - 1, c, "up-right", grid[0, c])
    return out
""",
    "a65b410d": """
def solve(grid):
    row = int(np.nonzero(np.any(grid == 2, axis=1))[0][0])
    length = int(np.sum(grid == 2))
    out = grid.copy()
    for r in range(grid.shape[0]):
        if r < row:
            out[r, : length + row - r] = 3
        elif r > row:
            out[r, : max(length - (r - row), 0)] = 1
    return out
""",
    "963e52fc": """
def solve(grid):
    width = grid.shape[1]
    period = min(p for p in range(1, width + 1) if np.array_equal(grid[:, p:], grid[:, : width - p]))
    return tile(grid[:, :period], 1, 2 * width // period + 1)[:, : 2 * width]
""",
    "d8c310e9": """
def solve(grid):
    width = grid.shape[1]
    used = int(np.nonzero(np.any(grid != 0, axis=0))[0][-1]) + 1
    period = min(p for p in range(1, used) if np.array_equal(grid[:, p:used], grid[:, : used - p]))
    return tile(grid[:, :period], 1, width // period + 1)[:, :width]
""",
}
