"""The prompt-information ladder: from one reference's Image Understanding Tree (IUT), trees
that keep everything, then drop more and more of what it says.

The IUT's pieces of information are its objects, each non-empty attribute of an object, each
relationship and each non-empty global feature (style, lighting, palette, composition). A seeded
shuffle of them (seeded by the run seed and the case, never by the model, so every T2I model
gets the same drops) fixes the drop order; rung k drops the first ``k * step`` of them, so each
rung's tree says strictly less than the one above it (nested by construction). The global
description restates the objects in one sentence, so every rung below the top leaves it out:
otherwise dropped objects would come back through it. An object's attributes go with it, and a
relationship goes with either of its objects.

>>> from repainter.schemas import ImageUnderstandingTree
>>> iut = ImageUnderstandingTree(global_description="a red cat on a sofa", objects=[
...     {"name": "cat", "attributes": {"color": "red"}}, {"name": "sofa"}],
...     relationships=[{"subject": "cat", "relation": "on", "object": "sofa"}])
>>> [len(tree.objects) for tree in prompt_ladder(iut, rungs=3, seed=0)]
[2, 1, 1]
>>> [tree.global_description for tree in prompt_ladder(iut, rungs=3, seed=0)][1:]
['', '']
"""

from __future__ import annotations

import hashlib

import numpy as np

from repainter.schemas import ImageUnderstandingTree

GLOBAL_FEATURES = ("style", "lighting", "color_palette", "composition")


def information_units(iut: ImageUnderstandingTree) -> list[tuple]:
    """The tree's droppable pieces: ("object", i), ("attribute", i, name), ("relation", i),
    ("global", name)."""
    units: list[tuple] = []
    for index, obj in enumerate(iut.objects):
        units.append(("object", index))
        units += [("attribute", index, name)
                  for name, value in obj.attributes.model_dump().items() if value]
    units += [("relation", index) for index in range(len(iut.relationships))]
    units += [("global", name) for name in GLOBAL_FEATURES if getattr(iut.global_features, name)]
    return units


def drop_order(iut: ImageUnderstandingTree, seed: int, case_id: str) -> list[tuple]:
    """The tree's pieces in the seeded order they are dropped (the same for every model),
    leaving out those already gone when their turn comes (an attribute or relationship of a
    dropped object): every piece in the list removes something still there."""
    units = information_units(iut)
    digest = hashlib.sha256(f"sanity:{seed}:{case_id}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    names = [obj.name for obj in iut.objects]
    gone: set[str] = set()
    order = []
    for unit in (units[i] for i in rng.permutation(len(units))):
        if unit[0] == "attribute" and names[unit[1]] in gone:
            continue
        if unit[0] == "relation":
            rel = iut.relationships[unit[1]]
            if {rel.subject, rel.object} & gone:
                continue
        if unit[0] == "object":
            # the name, not the index: a relationship names its objects
            gone.add(names[unit[1]])
        order.append(unit)
    return order


def _without(iut: ImageUnderstandingTree, dropped: list[tuple]) -> ImageUnderstandingTree:
    data = iut.model_dump(mode="json")
    gone_objects = {u[1] for u in dropped if u[0] == "object"}
    names = {i: obj["name"] for i, obj in enumerate(data["objects"])}
    for unit in dropped:
        if unit[0] == "attribute":
            data["objects"][unit[1]]["attributes"][unit[2]] = ""
        elif unit[0] == "global":
            data["global_features"][unit[1]] = ""
    gone_names = {names[i] for i in gone_objects}
    data["relationships"] = [
        rel for i, rel in enumerate(data["relationships"])
        if ("relation", i) not in dropped and not {rel["subject"], rel["object"]} & gone_names]
    data["objects"] = [obj for i, obj in enumerate(data["objects"]) if i not in gone_objects]
    data["global_description"] = ""
    return ImageUnderstandingTree.model_validate(data)


def prompt_ladder(iut: ImageUnderstandingTree, *, rungs: int, seed: int,
                  case_id: str = "") -> list[ImageUnderstandingTree]:
    """``rungs`` trees, best first: the whole tree, then ever more dropped. Rung k drops the
    first ``k * (pieces // rungs)`` pieces of :func:`drop_order`, so the last one keeps about
    1 / rungs of them; a tree with fewer pieces than rungs has no strict ladder (ValueError)."""
    order = drop_order(iut, seed, case_id)
    if len(order) < rungs:
        raise ValueError(f"{len(order)} pieces of information, fewer than the {rungs} rungs")
    step = len(order) // rungs
    return [iut] + [_without(iut, order[:rung * step]) for rung in range(1, rungs)]


def ladder_pieces(iut: ImageUnderstandingTree, seed: int, case_id: str = "") -> int:
    """How many droppable pieces the tree has (a ladder needs at least as many as rungs)."""
    return len(drop_order(iut, seed, case_id))
