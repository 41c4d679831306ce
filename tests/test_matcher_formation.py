"""Cluster formation on a relation given outright: what the final check of a formed group keeps
out, and that it asks about a fixed number of pairs per member, not every pair."""

from __future__ import annotations

import pytest

from dam_dedupe.matcher.formation import LAST_CHECKERS, form_groups


def relation(size: int, lookalike: int, passes: set[int], near: bool = False):  # type: ignore[no-untyped-def]
    """(neighbours, edges, consistent, asked) for ``size`` images in order, all copies of one
    picture but ``lookalike``, which passes as a copy of the images in ``passes`` only (the sharp
    copies, largest first); with ``near``, every verified pair but the look-alike's uses a fifth of
    the thresholds, else all of them.
    ``asked`` records every pair ``consistent`` is asked about."""
    asked: list[tuple[int, int]] = []

    def copies(a: int, b: int) -> bool:
        if lookalike in (a, b):
            return (b if a == lookalike else a) in passes
        return True

    def neighbours(images: list[int]) -> list[list[tuple[int, str]]]:
        return [[(other, "identity") for other in range(size) if other != image] for image in images]

    def edges(pairs: list[tuple[int, int, str]]) -> list[tuple[float, float] | None]:
        share = [1.0, 0.2]  # of the thresholds a verified copy uses: all of them, or a fifth (near)
        return [
            (abs(a - b) / size, share[near and lookalike not in (a, b)]) if copies(a, b) else None for a, b, _ in pairs
        ]

    def consistent(pairs: list[tuple[int, int]]) -> list[bool]:
        asked.extend(pairs)
        return [copies(a, b) for a, b in pairs]

    return neighbours, edges, consistent, asked


@pytest.mark.parametrize(
    "lookalike, passes",
    [
        (0, set(range(1, 7))),  # came first, so it represents a group and admits the sharp copies
        (1, {0, 2, 3}),  # admitted by the representative and is in the sample, so later copies fail against it
    ],
)
@pytest.mark.parametrize("near", [False, True])
def test_a_lookalike_admitted_by_the_sharp_copies_leaves_and_the_copies_are_one_group(
    lookalike: int, passes: set[int], near: bool
) -> None:
    # The look-alike splits the copies into two groups; united, it fails against the farthest
    # copies (the last to join) and leaves, and the copies are one group. Copies near their
    # representative are not verified against one another, but each is against the look-alike,
    # which uses all of the thresholds against the representative.
    neighbours, edges, consistent, _ = relation(30, lookalike, passes, near)
    groups = form_groups(list(range(30)), neighbours, edges, consistent, room=1.0)
    copies = [image for image in range(30) if image != lookalike]
    assert sorted(sorted(group) for group in groups) == sorted([[lookalike], copies])


def test_a_formed_group_is_checked_against_a_fixed_number_of_members() -> None:
    neighbours, edges, consistent, asked = relation(40, 0, set(range(1, 7)))
    form_groups(list(range(40)), neighbours, edges, consistent)
    # Admission asks about each member against the representative and the sample, and the final
    # check against the representative and the last members: linear, far from the 780 pairs of 40.
    assert len(set(asked)) <= 40 * (LAST_CHECKERS + 1) + 40 * 3


def test_copies_near_their_representative_are_not_verified_against_one_another() -> None:
    # The most-copied image: its representative verifies each copy once, and as every copy is
    # near it, neither admission nor the final check asks about a pair of copies.
    neighbours, edges, consistent, asked = relation(1000, -1, set(), near=True)
    groups = form_groups(list(range(1000)), neighbours, edges, consistent, room=1.0)
    assert groups == [list(range(1000))]
    assert asked == []


def test_the_pairs_foreseen_are_those_verified_next_and_change_no_group() -> None:
    # 40 pictures of 8 copies each, each image also nominating 3 images of other pictures; the copies
    # of a picture come together in the order (as the largest-first order brings them). A cluster
    # verifies ahead what it is told (Foresee): the most it can spare the matching process is the
    # share of the pairs verified that it was told of first.
    pictures, copies = 40, 8
    size = pictures * copies
    picture = [image // copies for image in range(size)]
    verified: list[tuple[int, int, str]] = []
    foreseen: set[tuple[int, int, str]] = set()
    told_first = []
    told: list[int] = []  # pairs newly told, by call

    def foresee(pairs: list[tuple[int, int, str]]) -> None:
        new = set(pairs) - foreseen
        if new:
            told.append(len(new))
            foreseen.update(new)

    def neighbours(images: list[int]) -> list[list[tuple[int, str]]]:
        found = []
        for image in images:
            same = [other for other in range(size) if picture[other] == picture[image] and other != image]
            others = [(image * 7 + k * 13) % size for k in range(1, 4)]
            found.append([(other, "identity") for other in same + [o for o in others if picture[o] != picture[image]]])
        return found

    def edges(pairs: list[tuple[int, int, str]]) -> list[tuple[float, float] | None]:
        verified.extend(pairs)
        told_first.extend(pair in foreseen for pair in pairs)
        return [(abs(a - b) / size, 0.5) if picture[a] == picture[b] else None for a, b, _ in pairs]

    def consistent(pairs: list[tuple[int, int]]) -> list[bool]:
        return [picture[a] == picture[b] for a, b in pairs]

    expected = [list(range(p * copies, (p + 1) * copies)) for p in range(pictures)]
    plain = form_groups(list(range(size)), neighbours, edges, consistent, room=1.0)
    verified.clear()
    told_first.clear()

    ahead = form_groups(list(range(size)), neighbours, edges, consistent, room=1.0, foresee=foresee)

    assert sorted(sorted(group) for group in plain) == expected
    assert sorted(sorted(group) for group in ahead) == expected
    assert len(verified) >= pictures * (copies - 1)
    assert sum(told_first) / len(told_first) >= 0.95
    assert sum(told) / len(told) > 4 * copies  # in calls of many images' pairs, not one image's at a time
