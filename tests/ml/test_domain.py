"""The domain recipe's mix (ml.domain): the user's faces make up their share of it however few they are."""

from dataclasses import replace

import numpy as np

from ml.datasets import FaceData
from ml.domain import mixed
from ml.recipes import DOMAIN_RECIPES, DomainRecipe, TrainConfig, folds_for


def faces(n: int, label: int) -> FaceData:
    return FaceData(
        format="fer2013",
        images=np.full((n, 96, 96), label, np.uint8),
        lines=np.arange(n),
        labels=np.full(n, label, np.int64),
    )


def recipe(**kw) -> DomainRecipe:
    return DomainRecipe(repeats=2, replay=40, folds=5, config=TrainConfig(epochs=1), **kw)


def user_part(mix: FaceData) -> int:
    return int((mix.labels == 1).sum())  # the user's faces are label 1, the reference's label 0


def test_the_users_faces_make_up_at_least_their_share_however_few_they_are():
    reference = faces(100, 0)
    for n_user in (3, 10, 37):
        mix = mixed(faces(n_user, 1), reference, recipe(share=0.5), seed=1)
        assert (mix.labels == 0).sum() == 40  # the replay: a sample of the reference faces
        assert user_part(mix) % n_user == 0  # every user face the same number of times
        assert user_part(mix) / len(mix) >= 0.5
        assert (user_part(mix) - n_user) / (len(mix) - n_user) < 0.5  # one repeat fewer would fall short
    many = mixed(faces(60, 1), reference, recipe(share=0.5), seed=1)
    assert user_part(many) == 2 * 60  # never fewer than the recipe's repeats


def test_without_a_share_the_repeats_alone_decide_and_a_small_reference_set_caps_the_replay():
    assert user_part(mixed(faces(10, 1), faces(100, 0), recipe(), seed=1)) == 20
    small = mixed(faces(10, 1), faces(15, 0), recipe(share=0.5), seed=1)
    assert (small.labels == 0).sum() == 15 and user_part(small) == 20  # 15 replayed: 2 repeats already reach half


def test_the_shipped_emotion_recipe_gives_a_hundred_faces_half_the_mix():
    emotion = DOMAIN_RECIPES["emotion"]
    repeats, n_replay = emotion.mix_counts(100, 20_000)
    assert n_replay == emotion.replay
    assert 100 * repeats >= n_replay * emotion.share / (1 - emotion.share)
    assert replace(emotion, share=None).mix_counts(100, 20_000) == (emotion.repeats, emotion.replay)


def test_many_people_need_fewer_folds_few_people_keep_them_all():
    emotion = DOMAIN_RECIPES["emotion"]
    assert [folds_for(emotion, n) for n in (1, 2, 4, 14, 25, 29, 30, 33, 62)] == [0, 2, 4, 5, 5, 4, 3, 3, 3]
    assert folds_for(replace(emotion, fold_groups=0), 62) == 5


def test_a_blended_fine_tune_sits_that_far_from_its_parent_weight_by_weight():
    import tf_keras as keras

    from ml.domain import blended
    from ml.models import build_emotion_model

    keras.utils.set_random_seed(5)
    parent, tuned = build_emotion_model(num_classes=3), build_emotion_model(num_classes=3)
    before = tuned.get_weights()
    assert blended(tuned, parent, 1.0) is tuned and all(
        (a == b).all() for a, b in zip(tuned.get_weights(), before, strict=True)
    )
    blended(tuned, parent, 0.7)
    for got, p, t in zip(tuned.get_weights(), parent.get_weights(), before, strict=True):
        np.testing.assert_allclose(got, p + 0.7 * (t - p), rtol=1e-5, atol=1e-6)
