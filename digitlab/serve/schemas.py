"""Request and response bodies of the JSON API (pydantic models; they also make the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .limits import MAX_BATCH

Pixel = Annotated[float, Field(ge=0, le=255)]


def _one_of_image_or_pixels(schema: dict) -> None:
    """In the OpenAPI schema: exactly one of the two fields, neither null (what the validator checks)."""
    for name in ("image", "pixels"):
        prop = schema["properties"][name]
        branches = [b for b in prop.pop("anyOf") if b.get("type") != "null"]
        prop.update(branches[0])
        prop.pop("default", None)
    schema["oneOf"] = [{"required": ["image"]}, {"required": ["pixels"]}]


class ImageInput(BaseModel):
    """One input: an encoded image (base64) or the 784 pixels of a 28x28 MNIST-style image."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_of_image_or_pixels)

    image: Optional[str] = Field(
        None, min_length=1, description="An image file (PNG, JPEG, GIF, BMP, TIFF, WebP or PNM) in "
        "base64, optionally as a data: URL. It goes through the same preprocessing as an upload "
        "(digitlab.vision.to_mnist).")
    pixels: Optional[Annotated[list[Pixel], Field(min_length=784, max_length=784)]] = Field(
        None, description="784 values 0..255, row by row, white ink on black as in MNIST; "
        "fed to the network as they are (no preprocessing).")

    @model_validator(mode="after")
    def _exactly_one(self):
        given = [name for name in ("image", "pixels") if name in self.model_fields_set]
        if len(given) != 1:
            raise ValueError("give exactly one of 'image' (base64) or 'pixels' (784 values)")
        if getattr(self, given[0]) is None:
            raise ValueError(f"'{given[0]}' must not be null")
        return self


class BatchInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: Annotated[list[ImageInput], Field(min_length=1, max_length=MAX_BATCH)] = Field(
        description=f"1 to {MAX_BATCH} inputs, each an image or 784 pixels.")


class DigitResult(BaseModel):
    digit: int = Field(description="The most probable class, 0..9.")
    confidence: float = Field(description="Its probability.")
    probabilities: list[float] = Field(description="The 10 class probabilities.")
    image: Optional[str] = Field(None, description="The 28x28 image the network saw, as a PNG data: URL.")
    box: Optional[list[int]] = Field(None, description="Where the digit is in the photo: [left, top, right, bottom] in pixels (right and bottom exclusive).")


class PredictResponse(BaseModel):
    model: str
    digit: Optional[int] = Field(None, description="The predicted digit (absent with number=true).")
    confidence: Optional[float] = None
    probabilities: Optional[list[float]] = None
    image: Optional[str] = Field(None, description="The 28x28 image the network saw, as a PNG data: URL.")
    box: Optional[list[int]] = Field(None, description="Where the digit was found in the image: [left, top, right, "
                                     "bottom] in pixels (right and bottom exclusive); absent for pixels.")
    number: Optional[str] = Field(None, description="With number=true: the digits read left to right.")
    digits: Optional[list[DigitResult]] = Field(None, description="With number=true: each digit found.")
    answer: str = Field(description="The answer as `digitlab predict` prints it: one character per digit, "
                        "'?' where the top probability is below `threshold`.")
    latency_ms: float = Field(description="Server time for this request: decoding, preprocessing, inference.")
    inference_ms: float = Field(description="The network's share of latency_ms.")


class BatchItemResult(BaseModel):
    digit: Optional[int] = None
    confidence: Optional[float] = None
    probabilities: Optional[list[float]] = None
    error: Optional[str] = Field(None, description="Why this item could not be read (the others still are).")


class BatchResponse(BaseModel):
    model: str
    results: list[BatchItemResult]
    latency_ms: float
    inference_ms: float


class ModelSummary(BaseModel):
    name: str
    file: Optional[str] = None
    recipe: Optional[str] = None
    test_accuracy: Optional[float] = None
    params: int
    epochs: int
    default: bool = False


class ModelList(BaseModel):
    default: str
    models: list[ModelSummary]


class LayerRow(BaseModel):
    layer: str
    output_shape: list[int]
    params: int


class ModelDetails(ModelSummary):
    recipe_version: Optional[int] = None
    published_accuracy: Optional[float] = None
    training: dict[str, Any]
    metrics: dict[str, Any]
    saved: Optional[str] = None
    input_shape: list[int]
    architecture: list[LayerRow]
    history: list[dict[str, Any]]


class Mistake(BaseModel):
    index: int = Field(description="Index in the MNIST test set.")
    label: int
    predicted: int
    confidence: float
    image: str = Field(description="The test image as a PNG data: URL.")


class Confusion(BaseModel):
    model: str
    available: bool = Field(description="False when the MNIST test set is not on the server; see reason.")
    reason: Optional[str] = None
    dataset: Optional[str] = None
    images: Optional[int] = None
    accuracy: Optional[float] = None
    matrix: Optional[list[list[int]]] = Field(None, description="10x10 counts: rows true label, columns predicted.")
    misclassified: Optional[list[Mistake]] = None


class Health(BaseModel):
    status: str
    models: Optional[list[str]] = None
