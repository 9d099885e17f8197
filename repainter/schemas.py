"""Structured data exchanged with MLLM backends.

Every reply a model gives is validated against one of these models, whichever backend produced it;
only their data fields are ever used, so text inside a reference image cannot change control flow.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_OBJECTS = 5


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class GlobalFeatures(_Model):
    style: str = ""
    lighting: str = ""
    color_palette: str = ""
    composition: str = ""


class ObjectAttributes(_Model):
    """Attributes of one object; the type-specific ones stay empty where they do not apply."""

    color: str = ""
    material: str = ""
    position: str = ""
    texture: str = ""
    size: str = ""
    shape: str = ""
    # person
    posture: str = ""
    expression: str = ""
    clothing: str = ""
    # animal
    species: str = ""
    # object
    function_state: str = ""


class SceneObject(_Model):
    name: str
    type: Literal["person", "animal", "object"] = "object"
    attributes: ObjectAttributes = Field(default_factory=ObjectAttributes)


class Relationship(_Model):
    subject: str
    relation: str
    object: str


class ImageUnderstandingTree(_Model):
    """The reference method's Image Understanding Tree (IUT)."""

    global_description: str
    global_features: GlobalFeatures = Field(default_factory=GlobalFeatures)
    objects: list[SceneObject] = Field(default_factory=list, max_length=MAX_OBJECTS)
    relationships: list[Relationship] = Field(default_factory=list)

    @field_validator("objects", mode="before")
    @classmethod
    def _keep_first_objects(cls, value):
        # Models sometimes list more than asked; keep the first MAX_OBJECTS rather than fail.
        return value[:MAX_OBJECTS] if isinstance(value, list) else value


class PromptVariants(_Model):
    prompts: list[str] = Field(min_length=1)


class Difference(_Model):
    aspect: Literal["style", "composition", "content", "color", "background", "other"] = "content"
    description: str
    # Optional machine-readable detail; backends that can act on it precisely (the built-in
    # scene analyst) fill it, others leave it empty.
    target: str = ""
    change: str = ""


class Critique(_Model):
    differences: list[Difference] = Field(default_factory=list)
    summary: str = ""


class RevisedPrompt(_Model):
    prompt: str = Field(min_length=1)


class Judgement(_Model):
    """MLLM judge: similarity of a candidate to the reference on a 1-5 scale."""

    aesthetic: int = Field(ge=1, le=5)
    semantic: int = Field(ge=1, le=5)
    rationale: str = ""
