"""Forming groups of copies around representatives, in time that grows with the number of images.

Images are taken in a fixed order (the caller's: largest picture first, so that a group's
representative is its most detailed copy). An image not yet in a group asks the index for its
candidates (:class:`~dam_dedupe.matcher.neighbours.CandidateIndex`), then:

1. it joins the group of its nearest candidate already in one with which it is a verified copy
   (``edges``, the pair decision as set), if that group *admits* it (up to ``JOIN_ATTEMPTS`` tries);
2. otherwise it starts a group and is that group's representative;
3. each of its candidates not yet in a group joins its group on the same two conditions (it stops
   after ``CLAIM_MISSES`` failures in a row).

A group admits an image that is a copy (``consistent``: the pair decision relaxed by
``group_slack``) of its representative and of the first :data:`SAMPLE` other members. So an
image is verified against a fixed number of members, never against all of them, and a chain
A~B~C where A and C are not copies never becomes one group: whichever of A, B, C comes first,
the third is checked against both others (a group of up to ``SAMPLE + 2`` members has every
pair checked or settled, below), and once formed, each member of a group of up to ``CHECKED_SIZE`` is checked
against the representative and the ``LAST_CHECKERS`` members last to join. Because every member
is a copy of the representative, the copies of one image form one group however many there are.

Images that are already in a group never ask the index, so a cluster of n copies costs about
n candidate rows and at most ``n x (SAMPLE + 1)`` verifications, not the n²/2 pairs among its members.

Most pairs among the members of a large group are not verified at all. A pair's measures are
distances between two pictures (the RMS of a residual, a mean colour difference) that obey the
triangle inequality or come close to it. So two members verified against one representative, each
using a share of the thresholds (:func:`~dam_dedupe.matcher.compare.threshold_share`), are within
the sum of their shares of each other's thresholds: when that sum is within ``room`` (1, the
thresholds as set, where admission and the final check apply the relaxed ones:
:data:`~dam_dedupe.matcher.compare.SETTLING_ROOM`), neither asks about them (:func:`_settled`).
The most-copied image's re-saved copies use a fifth to a third of the thresholds against their
representative, so each costs about one verification; a look-alike only just passes against the
representative, uses most of them, and is checked against the others as before. A chain stays
apart for the same reason: B between A and C uses most of the thresholds against either, so the
shares of A and C against B sum to more than 1, and A is checked against C.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

SAMPLE = 2
"""Members besides the representative that a new member must also be a copy of."""
FIRST_BATCH = 16
"""Images whose candidates are looked up in the first call to the index."""
ROWS_PER_BATCH = 1 << 16
"""Candidate rows a call to the index should return: each later batch is sized from the rows per
image of the one before (between ``FIRST_BATCH`` and ``MAX_BATCH`` images), so a library of
distinct images is searched in a few large calls and one of many copies in small ones (images
claimed by an earlier image of their batch asked for their candidates in vain)."""
MAX_BATCH = 4096
PREPARE_LIMIT = 2048
"""Most images ``prepare`` is told of at once (more only when one image alone may verify more): a
batch is placed a part at a time, each part as many of its images as stay within this, so that a
batch of thousands of distinct images does not load the thumbnails of all their candidates at once
(at 20,000 images one batch needed 7,550)."""
CHECKED_SIZE = 40
"""Groups of up to this many members, united with the groups that declined verified copies of
their members or hold a verified copy that a member met after it joined (up to this size in all),
are checked again once formed (:func:`_consistent_parts`): a look-alike admitted by the
representative and the sample (a burst that passes against the original) fails against the other
copies, and goes."""
LAST_CHECKERS = 4
"""Members last to join a group that, with its representative, every member of a group of up to
``CHECKED_SIZE`` is checked against once formed. Members join nearest first, so the last are the
farthest copies (the smallest, the most compressed, or those of a united group): a look-alike
that passes against the sharp copies fails against them. Checking against a fixed number of
members, not every pair, keeps the check's cost linear in the group's size."""
NONE = -1
"""In the per-image arrays: no group yet, or no standing against a representative."""
JOIN_ATTEMPTS = 8
"""Most candidates already in a group through which an image tries to join one before it starts its own."""

CLAIM_BATCH = 256
"""Most candidates an image verifies at once while it claims them: the first batch is
``CLAIM_MISSES`` (enough to stop after, among candidates of another picture), each later one twice
the one before."""
CLAIM_MISSES = 16
"""Candidates in a row that an image may fail to claim before it stops claiming: candidates come
nearest first, so a run of failures means the rest are copies of another, similar picture
(verifying each costs a crop search). Any copy of its own left unclaimed still joins its group
later, through step 1, when it asks for its own candidates."""

FORESEEN = JOIN_ATTEMPTS + CLAIM_MISSES
"""Candidates of each image (nearest first) that ``prepare`` is told of with its part of a batch:
an image that joins a group or claims its copies rarely verifies more. Those of an image with
more (the first copy of a picture copied thousands of times) are told a claim batch at a time."""

Neighbours = Callable[[list[int]], list[list[tuple[int, str]]]]
"""Candidates of each asked image as (image, symmetry that turns the asked one into it), nearest first."""
Edge = tuple[float, float]
"""A verified copy: how far the second image is from the first after the symmetry (lower is
closer), and the share of the thresholds it uses (:func:`~dam_dedupe.matcher.compare.threshold_share`)."""
Edges = Callable[[list[tuple[int, int, str]]], list[Edge | None]]
"""For each (first image, second image, symmetry): its :data:`Edge` if the second is a copy of
the first under the pair decision as set, else ``None``. Asked for many pairs at once, so that
they can be verified together."""
Consistent = Callable[[list[tuple[int, int]]], list[bool]]
"""For each (first image, second image): whether the second is a copy of the first under the
relaxed decision, any symmetry. Asked for many pairs at once."""
Prepare = Callable[[set[int]], None]
"""Told the images about to be verified, before a part of a batch is placed (up to about
``PREPARE_LIMIT``) and before each claim batch: a chance to load their thumbnails at once."""
Foresee = Callable[[list[tuple[int, int, str]]], None]
"""Told the pairs ``edges`` will likely be asked next (those of a part of a batch, then each claim
batch), before they are asked: a chance to verify them together elsewhere (on a Dask cluster,
:mod:`dam_dedupe.dask_verify`). The answers must be what ``edges`` gives, which is asked all the same."""
Progress = Callable[[int, int], None]
"""Told (images placed, all images) after each batch."""


@dataclass(slots=True)
class _Group:
    representative: int
    members: list[int]
    sample: list[int] = field(default_factory=list)


def form_groups(
    order: Sequence[int],
    neighbours: Neighbours,
    edges: Edges,
    consistent: Consistent,
    prepare: Prepare | None = None,
    progress: Progress | None = None,
    room: float = 0.0,
    foresee: Foresee | None = None,
) -> list[list[int]]:
    """Partition the images in ``order`` (each of ``0 .. len(order) - 1`` once) into groups of
    copies (see the module notes); every image is in exactly one group, many of them alone. Two
    members whose shares against one representative sum to at most ``room`` are not verified
    against each other (0: every pair is). Returns the groups, each in order of joining. ``foresee``
    does not change them: it is told, ahead, the pairs about to be verified (see :data:`Foresee`).

    What is kept of each image is in arrays by image number, 16 bytes an image (dictionaries of
    them took about 100): at a million images that is the difference between 16 MB and 100 MB."""
    total = len(order)
    code = "i" if total < 1 << 31 else "q"
    group_of = array(code, [NONE]) * total  # the group each image is in
    standing = array(code, [NONE]) * total  # the representative each image was verified against
    share = array("d", [0.0]) * total  # and the share of the thresholds it used
    placed = 0
    groups: list[_Group] = []
    refused: set[tuple[int, int]] = set()
    contacts: list[tuple[int, int]] = []  # verified copies whose groups did not admit one another

    def settled(first: int, second: int) -> bool:
        return _settled(first, second, standing, share, room)

    def copies(pairs: list[tuple[int, int, str]]) -> list[Edge | None]:
        # A pair that failed once is not tried again from its other end (a candidate pair is
        # found from both ends): as before, each candidate pair is verified once.
        keys = [(min(image, other), max(image, other)) for image, other, _ in pairs]
        asked = [k for k, key in enumerate(keys) if key not in refused]
        found: list[Edge | None] = [None] * len(pairs)
        for k, edge in zip(asked, edges([pairs[k] for k in asked]), strict=True):
            found[k] = edge
            if edge is None:
                refused.add(keys[k])
        return found

    def admitted(number: int, images: list[int], through: int) -> list[bool]:
        # Checked against the representative, then the sample, each step only for the images
        # that passed the one before and are not settled with that member, all of them at once.
        group = groups[number]
        passing = [True] * len(images)
        for member in [group.representative, *group.sample]:
            if member == through:
                continue
            asked = [k for k, ok in enumerate(passing) if ok and not settled(member, images[k])]
            for k, ok in zip(asked, consistent([(member, images[k]) for k in asked]), strict=True):
                passing[k] = ok
        return passing

    def stand(image: int, number: int, through: int, edge: Edge) -> None:
        # An image verified against a group's representative (kept only if it joins that group).
        if through == groups[number].representative:
            standing[image], share[image] = through, edge[1]

    def add(number: int, image: int) -> None:
        nonlocal placed
        group = groups[number]
        group_of[image] = number
        placed += 1
        group.members.append(image)
        if image == group.representative:
            standing[image], share[image] = image, 0.0
        elif len(group.sample) < SAMPLE:
            group.sample.append(image)
        if standing[image] not in (NONE, group.representative):
            standing[image] = NONE

    def place(image: int, candidates: list[tuple[int, str]]) -> None:
        declined: set[int] = set()
        home, attempts = None, 0
        for other, symmetry in candidates:
            number = group_of[other]
            if number == NONE or number in declined:
                continue
            if attempts >= JOIN_ATTEMPTS:
                break
            attempts += 1
            edge = copies([(image, other, symmetry)])[0]
            if edge is not None:
                stand(image, number, other, edge)
                if admitted(number, [image], other)[0]:
                    home = number
                    break
                declined.add(number)
                contacts.append((image, other))
        if home is None:
            home = len(groups)
            groups.append(_Group(image, []))
        add(home, image)
        meet(image, home, candidates, declined | {home})
        claim(home, image, [(other, symmetry) for other, symmetry in candidates if group_of[other] == NONE])

    def meet(image: int, home: int, candidates: list[tuple[int, str]], seen: set[int]) -> None:
        # Its nearest candidate in each other small group that it did not try to join (it found
        # its home first): a verified copy there is a contact, so the groups are united and
        # checked again together. Else a look-alike that came first (a burst a pixel wider than
        # the original) keeps the crops it claimed, which the original's group never asks for.
        asked: list[tuple[int, int, str]] = []
        for other, symmetry in candidates:
            number = group_of[other]
            if number == NONE or number in seen or len(asked) >= JOIN_ATTEMPTS:
                continue
            seen.add(number)
            if len(groups[number].members) + len(groups[home].members) <= CHECKED_SIZE:
                asked.append((image, other, symmetry))
        for (_, other, _), score in zip(asked, copies(asked), strict=True):
            if score is not None:
                contacts.append((image, other))

    def claim(home: int, image: int, unplaced: list[tuple[int, str]]) -> None:
        # Claim the verified candidates closest first, so that the sample is the closest copies
        # and a look-alike that passed the pair decision is checked against them, not one of them.
        verified: list[tuple[float, int]] = []
        misses, start, size = 0, 0, CLAIM_MISSES
        while start < len(unplaced) and misses < CLAIM_MISSES:
            part = unplaced[start : start + size]
            start, size = start + size, min(2 * size, CLAIM_BATCH)
            if prepare is not None:
                prepare({image, *(other for other, _ in part)})
            asked = [(image, other, s) for other, s in part]
            if foresee is not None:
                foresee(asked)
            for (other, _), edge in zip(part, copies(asked), strict=True):
                if edge is not None:
                    verified.append((edge[0], other))
                    stand(other, home, image, edge)
                    misses = 0
                else:
                    misses += 1
                    if misses >= CLAIM_MISSES:
                        break
        closest = [other for _, other in sorted(verified)]
        while closest and len(groups[home].sample) < SAMPLE:
            other = closest.pop(0)
            if admitted(home, [other], image)[0]:
                add(home, other)
            else:
                contacts.append((image, other))
        # The sample is complete now (or nothing is left), so the rest are admitted a part at a time.
        group = groups[home]
        for begin in range(0, len(closest), CLAIM_BATCH):
            admitting = closest[begin : begin + CLAIM_BATCH]
            if prepare is not None:
                prepare({group.representative, *group.sample, *admitting})
            for other, ok in zip(admitting, admitted(home, admitting, image), strict=True):
                if ok:
                    add(home, other)
                else:
                    contacts.append((image, other))

    start, batch = 0, FIRST_BATCH
    while start < total:
        seeds = [image for image in order[start : start + batch] if group_of[image] == NONE]
        start += batch
        if seeds:
            found = neighbours(seeds)
            part = 0
            while part < len(seeds):
                stop, needed = _next_part(seeds, found, part, group_of, groups)
                if prepare is not None:
                    prepare(needed)
                if foresee is not None:
                    foresee(_foreseen(seeds[part:stop], found[part:stop], group_of, refused))
                for image, candidates in zip(seeds[part:stop], found[part:stop], strict=True):
                    if group_of[image] == NONE:
                        place(image, candidates)
                part = stop
            rows = sum(len(candidates) for candidates in found) / len(seeds)
            batch = int(min(MAX_BATCH, max(FIRST_BATCH, ROWS_PER_BATCH / max(rows, 1.0))))
        if progress is not None:
            progress(placed, total)
    merged = _small_unions([group.members for group in groups], [(group_of[a], group_of[b]) for a, b in contacts])
    return [part for members in merged for part in _consistent_parts(members, consistent, prepare, settled)]


def _settled(first: int, second: int, standing: array[int], share: array[float], room: float) -> bool:
    """Whether two images are a copy under the relaxed decision without verifying them: both were
    verified against one representative, using shares of the thresholds that sum to at most
    ``room`` (see the module notes)."""
    representative = standing[first]
    return representative != NONE and representative == standing[second] and share[first] + share[second] <= room


def _small_unions(groups: list[list[int]], contacts: list[tuple[int, int]]) -> list[list[int]]:
    """``groups`` with those joined by a contact united while the union has at most ``CHECKED_SIZE``
    members: the order images came in decides which copy represents a group, and a look-alike that
    came first can keep out copies that the other members accept (:func:`_consistent_parts` then
    decides the union)."""
    parent = list(range(len(groups)))
    size = [len(members) for members in groups]

    def root(number: int) -> int:
        while parent[number] != number:
            parent[number] = parent[parent[number]]
            number = parent[number]
        return number

    for a, b in contacts:
        ra, rb = root(a), root(b)
        if ra != rb and size[ra] + size[rb] <= CHECKED_SIZE:
            parent[rb] = ra
            size[ra] += size[rb]
    united: dict[int, list[int]] = {}
    for number, members in enumerate(groups):
        united.setdefault(root(number), []).extend(members)
    return list(united.values())


def _consistent_parts(
    members: list[int], consistent: Consistent, prepare: Prepare | None, settled: Callable[[int, int], bool]
) -> list[list[int]]:
    """``members`` as one group if each is ``consistent`` with the representative and the
    ``LAST_CHECKERS`` last members (so those are checked against every member; pairs
    ``settled`` pass unasked), else the group without the members that
    fail most (each then alone). Only groups of up to ``CHECKED_SIZE`` are checked this way."""
    if not 2 < len(members) <= CHECKED_SIZE:
        return [members]
    checkers = {members[0], *members[max(1, len(members) - LAST_CHECKERS) :]}
    pairs = [
        (first, second)
        for n, first in enumerate(members)
        for second in members[n + 1 :]
        if (first in checkers or second in checkers) and not settled(first, second)
    ]
    if prepare is not None and pairs:
        prepare({image for pair in pairs for image in pair})
    failures: dict[int, set[int]] = {member: set() for member in members}
    for (first, second), ok in zip(pairs, consistent(pairs), strict=True):
        if not ok:
            failures[first].add(second)
            failures[second].add(first)
    alone: list[list[int]] = []
    kept = list(members)
    while any(failures[member] for member in kept):
        # The member that fails with most others goes (the last to join, of those that fail as often).
        worst = max(reversed(kept), key=lambda member: len(failures[member]))
        kept.remove(worst)
        alone.append([worst])
        for other in failures.pop(worst):
            failures[other].discard(worst)
    return [kept, *alone]


def _next_part(
    seeds: list[int], found: list[list[tuple[int, str]]], start: int, group_of: array[int], groups: list[_Group]
) -> tuple[int, set[int]]:
    """(end, images needed) of the part of a batch that starts at ``start``: the seeds from there
    whose placing may verify at most ``PREPARE_LIMIT`` images in all (at least one seed), told
    just before they are placed, so the groups their candidates are in are the current ones."""
    needed: set[int] = set()
    stop = start
    while stop < len(seeds):
        if group_of[seeds[stop]] == NONE:  # a seed claimed by an earlier one is not placed
            more = _needed(seeds[stop : stop + 1], found[stop : stop + 1], group_of, groups) - needed
            if stop > start and len(needed) + len(more) > PREPARE_LIMIT:
                break
            needed |= more
        stop += 1
    return stop, needed


def _needed(
    seeds: list[int], found: list[list[tuple[int, str]]], group_of: array[int], groups: list[_Group]
) -> set[int]:
    """The images placing ``seeds`` will likely verify: the seeds that have candidates, their first
    ``FORESEEN`` candidates, and the representatives and samples of the groups those are in."""
    needed = {seed for seed, candidates in zip(seeds, found, strict=True) if candidates}
    for candidates in found:
        for other, _ in candidates[:FORESEEN]:
            needed.add(other)
            number = group_of[other]
            if number != NONE:
                needed.add(groups[number].representative)
                needed.update(groups[number].sample)
    return needed


def _foreseen(
    seeds: list[int], found: list[list[tuple[int, str]]], group_of: array[int], refused: set[tuple[int, int]]
) -> list[tuple[int, int, str]]:
    """The pairs placing ``seeds`` will likely verify: each seed not yet in a group (nor among the
    first ``FORESEEN`` candidates of an earlier seed here, which likely claims it) with those of its own,
    but for the pairs already refused."""
    pairs: list[tuple[int, int, str]] = []
    claimed: set[int] = set()
    for seed, candidates in zip(seeds, found, strict=True):
        if group_of[seed] != NONE or seed in claimed:
            continue
        for other, symmetry in candidates[:FORESEEN]:
            claimed.add(other)
            if (min(seed, other), max(seed, other)) not in refused:
                pairs.append((seed, other, symmetry))
    return pairs
