"""The HTML of the demo's results panel: one card per animal, the no-pet verdict, refusals, the legend.

Plain functions from a :class:`petnet.inference.decoding.Prediction` (or a message) to escaped HTML, so the
panel's wording is tested without a server. The panel stays on the page until the next photo,
unlike a toast, so a refusal can be read at leisure.
"""

from __future__ import annotations

from html import escape

from petnet.inference.results import Pet, Prediction
from petnet.inference.visualize import ANIMAL_COLORS, MASK_COLORS, animal_color
from petnet.labels import MASK_CLASSES, display_name

NO_PET = "No cat or dog found in this photo."
OTHER_ANIMAL = "No cat or dog found: this looks like another kind of animal."
SMALL_ANIMAL = 0.45
"""An animal whose box's longer side is under this share of the photo's shorter side is "small in
the photo": the network learnt from close-ups, and on validation pets placed into scenes at 20-45%
of the short side only 9 of 50 were found as one animal (``python -m petnet.evaluate --split val``,
``detection.scenes``), against 49 of 50 at 70-100%."""
SMALL_NOTE = "Small in the photo, so this answer is less sure; a closer photo helps."
SURE_BREED = 0.5
"""First-breed probability below which the card says "Not sure": on the validation photos, once
calibrated, 6 of the 9 first breeds shown under 50% were right, 290 of the 298 shown over 90%
(``python -m petnet.evaluate --split val``, the report's ``calibration`` section)."""
CSS = """
.panel { border-radius: 8px; padding: 0.6em 0.8em; background: var(--block-background-fill); }
.refusal { border: 2px solid #c2410c; background: #fff7ed; color: #7c2d12; }
.pets { display: flex; flex-wrap: wrap; gap: 0.6em; }
.pet-card { flex: 1 1 14em; border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 0.5em 0.7em; }
.species { font-size: 1.15em; font-weight: 600; margin-bottom: 0.3em; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; border-radius: 2px; margin-right: 0.35em; }
.breed-heading { font-weight: 600; margin-bottom: 0.2em; }
.small-note { font-size: 0.9em; font-style: italic; margin-bottom: 0.2em; }
.breeds { list-style: none; margin: 0; padding: 0; }
.breed { display: grid; grid-template-columns: 1fr 3.2em; column-gap: 0.5em; margin: 0.15em 0; }
.bar { grid-column: 1 / 3; height: 0.35em; border-radius: 3px; background: var(--border-color-primary); }
.bar > span { display: block; height: 100%; border-radius: 3px; background: var(--color-accent); }
.share { text-align: right; font-variant-numeric: tabular-nums; }
"""
"""Styles of the panel (scoped to it by Gradio's ``css_template``)."""


def placeholder() -> str:
    """The panel before any photo."""
    return '<div class="panel">Add a photo to see the species, its top-3 breeds and the mask.</div>'


def refusal(shown_name: str, message: str) -> str:
    """A file that is not a usable photo: its name and the plain reason (``petnet.images`` wording)."""
    return (
        f'<div class="panel refusal" role="alert"><strong>We can\'t use {escape(shown_name)}.</strong> '
        f"{escape(message)}</div>"
    )


def verdict(prediction: Prediction) -> str:
    """ "No cat or dog found" (saying so when it looks like another animal), or species and top-3 breeds of each animal (coloured as in the overlay)."""
    if not prediction.has_pet:
        return f'<div class="panel no-pet"><span class="species">{OTHER_ANIMAL if prediction.other_animal else NO_PET}</span></div>'
    several = len(prediction.pets) > 1
    cards = "".join(_card(pet, index, several) for index, pet in enumerate(prediction.pets))
    heading = f'<div class="count">{len(prediction.pets)} animals found</div>' if several else ""
    return f'<div class="panel">{heading}<div class="pets">{cards}</div></div>'


def species_text(pet: Pet) -> str:
    """E.g. ``Dog · 95% sure``; ``Cat? · 42% sure`` when the likeliest breed is a cat's but the dog
    breeds hold more probability in all (the named species is the top breed's)."""
    doubt = "?" if pet.species_confidence < 0.5 else ""
    return f"{pet.species.capitalize()}{doubt} · {pet.species_confidence:.0%} sure"


def is_small(pet: Pet) -> bool:
    """Whether the animal's box is under :data:`SMALL_ANIMAL` of the photo's shorter side."""
    left, top, right, bottom = pet.box
    return max(right - left, bottom - top) < SMALL_ANIMAL * min(pet.region.shape)


def breed_heading(pet: Pet) -> str:
    """What the card says above the breed bars: nothing when the first breed is at least
    :data:`SURE_BREED` likely, else ``Not sure: Pug or Bulldog`` (the first two), so an unsure answer
    reads as one rather than as a bare low number. The percentages are out of all breeds, the same
    whole as the species' (``Dog · 97% sure``, ``Pug 80%``): one denominator, calibrated on validation."""
    if pet.breed_confidences[0] >= SURE_BREED:
        return ""
    first, second = (display_name(name) for name in pet.breed[:2])
    return f"Not sure: {first} or {second}"


def _card(pet: Pet, index: int, several: bool) -> str:
    swatch = f'<span class="swatch" style="background:rgb{animal_color(index)}"></span>' if several else ""
    heading = breed_heading(pet)
    heading = f'<div class="breed-heading">{escape(heading)}</div>' if heading else ""
    if is_small(pet):
        heading = f'<div class="small-note">{SMALL_NOTE}</div>' + heading
    breeds = "".join(
        f'<li class="breed"><span class="breed-name">{escape(display_name(name))}</span>'
        f'<span class="share">{confidence:.0%}</span>'
        f'<span class="bar"><span style="width:{100 * confidence:.1f}%"></span></span></li>'
        for name, confidence in zip(pet.breed, pet.breed_confidences, strict=True)
    )
    return (f'<div class="pet-card"><div class="species">{swatch}{species_text(pet)}</div>{heading}'
            f'<ol class="breeds">{breeds}</ol></div>')  # fmt: skip


def legend() -> str:
    """Overlay colours and the values of the mask PNG."""
    swatch = '<span style="display:inline-block;width:0.8em;height:0.8em;border-radius:2px;background:rgb{};margin:0 0.3em 0 0.8em"></span>'
    others = "".join(swatch.format(color) for color in ANIMAL_COLORS[1:])
    parts = [f"{swatch.format(MASK_COLORS['pet'])}pet (further animals{others})"]
    parts += [f"{swatch.format(MASK_COLORS[name])}{name}" for name in MASK_CLASSES if name != "pet"]
    values = ", ".join(f"{value} = {name}" for value, name in enumerate(MASK_CLASSES))
    return f'<div style="font-size:0.9em">Mask:{"".join(parts)}<br>Mask PNG values: {values}</div>'
