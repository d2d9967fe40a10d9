from dataclasses import replace

import numpy as np
import pytest
import tensorflow as tf

from ml.augment import AugmentConfig, augment_batch, flip_images, flip_points
from ml.schema import FLIP_PERMUTATION, KEYPOINTS
from tests.csvs import synthetic_face


def test_flip_permutation_swaps_every_left_right_pair():
    for i, j in enumerate(FLIP_PERMUTATION):
        a, b = KEYPOINTS[i], KEYPOINTS[j]
        if "left_" in a or "right_" in a:
            assert a.replace("left_", "#").replace("right_", "left_").replace("#", "right_") == b
        else:
            assert i == j


def test_a_flipped_faces_flipped_points_equal_the_original():
    image, points = synthetic_face(3)
    np.testing.assert_allclose(flip_points(flip_points(points)), points, atol=1e-5)
    np.testing.assert_array_equal(flip_images(flip_images(image)), image)
    flipped = flip_points(points)
    # the subject's left eye (image right, x ~ 64) becomes the left eye again after the mirror: x ~ 95 - 32
    assert flipped[0, 0] == 95 - points[1, 0]


def _sample(image: np.ndarray, x: float, y: float) -> float:
    x0, y0 = int(x), int(y)
    fx, fy = x - x0, y - y0
    g = image
    return (
        g[y0, x0] * (1 - fx) * (1 - fy)
        + g[y0, x0 + 1] * fx * (1 - fy)
        + g[y0 + 1, x0] * (1 - fx) * fy
        + g[y0 + 1, x0 + 1] * fx * fy
    )


@pytest.mark.parametrize("perspective", [0.0, 0.15])
def test_augmentation_moves_points_with_the_pixels(perspective):
    faces = [synthetic_face(i) for i in range(16)]
    images = np.stack([f[0] for f in faces]).astype(np.float32) / 255
    points = np.stack([f[1] for f in faces])
    geometric = AugmentConfig(max_brightness=0, max_contrast=0, max_perspective=perspective)
    out, moved = augment_batch(tf.constant(images[..., None]), tf.constant(points), geometric, tf.constant([1, 2]))
    out, moved = out.numpy()[..., 0], moved.numpy()
    assert not np.allclose(out, images)

    def error(offset: float) -> float:
        per_face = []
        for i in range(16):
            # a mirrored face relabels its points (left <-> right); either way each moved point sits on its pixel
            errors = {
                name: [
                    abs(_sample(out[i], *(moved[i, j] + offset)) - _sample(images[i], *points[i, order[j]]))
                    for j in range(15)
                    if 4 < moved[i, j, 0] < 91 and 4 < moved[i, j, 1] < 91
                ]
                for name, order in (("same", list(range(15))), ("mirrored", FLIP_PERMUTATION))
            }
            per_face.append(min(np.mean(errors["same"]), np.mean(errors["mirrored"])))
        return float(np.mean(per_face))

    # On its pixel, a point differs by the image noise only; 3 px off, it leaves its dark blob.
    assert error(0.0) < 0.03
    assert error(3.0) > 4 * error(0.0)


def test_a_mirror_alone_is_exact_and_swaps_the_pairs():
    image, points = synthetic_face(5)
    cfg = AugmentConfig(max_rotation_deg=0, max_scale=0, max_shift_px=0, max_brightness=0, max_contrast=0)
    images = tf.constant(np.stack([image] * 8)[..., None].astype(np.float32) / 255)
    out, moved = augment_batch(images, tf.constant(np.stack([points] * 8)), cfg, tf.constant([4, 2], tf.int64))
    mirrored = [i for i in range(8) if not np.allclose(out.numpy()[i], images.numpy()[i])]
    assert 0 < len(mirrored) < 8
    i = mirrored[0]
    np.testing.assert_allclose(out.numpy()[i, :, :, 0], images.numpy()[i, :, ::-1, 0], atol=1e-6)
    np.testing.assert_allclose(moved.numpy()[i], flip_points(points), atol=1e-4)


@pytest.mark.parametrize("perspective", [None, 0.08])
def test_zoom_augmentation_never_shows_a_border(perspective):
    """A border beside a shifted face tells the model how far it was moved; the zoom mode never makes one, with a
    perspective too."""
    from ml.augment import TASK_AUGMENT

    cfg = TASK_AUGMENT["keypoints"]
    if perspective is not None:
        cfg = replace(cfg, max_perspective=perspective)
    assert cfg.zoom is not None
    white = tf.ones([256, 96, 96, 1])
    points = tf.constant(np.tile([[[48.0, 57.0]] * 15], (256, 1, 1)), tf.float32)
    out, moved = augment_batch(
        white, points, replace(cfg, max_brightness=0, max_contrast=0), tf.constant([7, 11], tf.int64)
    )
    # bilinear sampling right at the edge may blend half a pixel; a border would be whole rows of fill
    assert float(tf.reduce_min(out)) > 0.99
    assert np.isfinite(moved.numpy()).all()


def test_the_image_warp_and_the_point_map_are_one_projective_map():
    """The pixels go through the 3x3 matrix, the points through M P(p) + b: the same map, perspective included."""
    from ml.augment import _perspective, forward_matrices, random_affine

    cfg = AugmentConfig(max_perspective=0.1, zoom=(1.1, 1.3))
    m, b, g, _ = random_affine(32, cfg, tf.constant([3, 5], tf.int64))
    assert float(tf.reduce_max(tf.abs(g))) > 0
    points = tf.constant(np.random.default_rng(0).uniform(0, 95, (32, 15, 2)), tf.float32)
    moved = tf.linalg.matvec(m[:, None], _perspective(points, g)) + b[:, None]
    h = forward_matrices(m, b, g)
    homogeneous = tf.linalg.matvec(h[:, None], tf.concat([points, tf.ones([32, 15, 1])], -1))
    np.testing.assert_allclose(homogeneous[..., :2] / homogeneous[..., 2:], moved.numpy(), atol=1e-3)
