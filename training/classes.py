"""The pan dulce types: folder names, display names and one-line descriptions.

Class names are the dataset's folder names and never change in code or files.
What people read comes from the display names and descriptions here, in
Spanish (es, the default) and English (en).
"""

from __future__ import annotations

REFERENCE_CLASSES = (
    "barquillo",
    "besos",
    "conchita",
    "cuernitos",
    "donas",
    "orejas",
    "pan-de-muerto",
    "puerquito",
    "quequito",
    "rosca-de-reyes",
)

LANGUAGES = ("es", "en")

DISPLAY_NAMES = {
    "es": {
        "barquillo": "Barquillo",
        "besos": "Beso",
        "conchita": "Conchita",
        "cuernitos": "Cuernito",
        "donas": "Dona",
        "orejas": "Oreja",
        "pan-de-muerto": "Pan de muerto",
        "puerquito": "Puerquito",
        "quequito": "Mantecada",
        "rosca-de-reyes": "Rosca de Reyes",
    },
    # English keeps the Spanish name that staff use, with a short gloss where it helps.
    "en": {
        "barquillo": "Barquillo (cream horn)",
        "besos": "Beso (kiss bun)",
        "conchita": "Conchita (shell bun)",
        "cuernitos": "Cuernito (crescent)",
        "donas": "Dona (doughnut)",
        "orejas": "Oreja (palmier)",
        "pan-de-muerto": "Pan de muerto",
        "puerquito": "Puerquito (pig cookie)",
        "quequito": "Mantecada (muffin)",
        "rosca-de-reyes": "Rosca de Reyes",
    },
}

DESCRIPTIONS = {
    "es": {
        "barquillo": "Cono de pasta crujiente, casi siempre relleno de crema pastelera.",
        "besos": "Dos mitades de pan suave unidas con mermelada y cubiertas de coco rallado o azúcar.",
        "conchita": "Pan suave y redondo con una costra de azúcar decorada como concha de mar.",
        "cuernitos": "Pan de mantequilla en forma de cuerno, a veces hojaldrado.",
        "donas": "Rosca frita de masa esponjosa, glaseada o revolcada en azúcar.",
        "orejas": "Hojaldre caramelizado doblado en forma de corazón, también llamado palmera.",
        "pan-de-muerto": "Pan de azúcar con huesitos de masa, tradicional del Día de Muertos.",
        "puerquito": "Galleta suave de piloncillo con forma de cerdito, también llamada marranito.",
        "quequito": "Panquecito esponjoso horneado en capacillo de papel, también llamado mantecada.",
        "rosca-de-reyes": "Rosca con ate y costra de azúcar que se comparte el 6 de enero.",
    },
    "en": {
        "barquillo": "A crisp pastry cone, usually filled with custard cream.",
        "besos": "Two soft domes joined with jam and rolled in grated coconut or sugar.",
        "conchita": "A soft round bun with a sugar crust scored like a seashell.",
        "cuernitos": "A buttery crescent-shaped roll, sometimes flaky.",
        "donas": "A fried ring of soft dough, glazed or rolled in sugar.",
        "orejas": "Caramelised puff pastry folded into a heart shape, also called a palmier.",
        "pan-de-muerto": "A sugared bun topped with dough bones, baked for the Day of the Dead.",
        "puerquito": "A soft piloncillo (brown-sugar) cookie shaped like a pig.",
        "quequito": "A fluffy little cake baked in a paper cup, also called a mantecada.",
        "rosca-de-reyes": "A ring-shaped bread with candied fruit paste, shared on 6 January.",
    },
}


def display_name(class_name: str, language: str = "es") -> str:
    """Return the translated name of a class, or a readable form of an unknown folder name."""
    names = DISPLAY_NAMES.get(language, DISPLAY_NAMES["es"])
    return names.get(class_name, class_name.replace("-", " ").replace("_", " ").capitalize())


def description(class_name: str, language: str = "es") -> str:
    """Return the one-line description of a class, or an empty string for an unknown one."""
    return DESCRIPTIONS.get(language, DESCRIPTIONS["es"]).get(class_name, "")


def class_catalog(classes: list[str] | tuple[str, ...]) -> dict:
    """Build the manifest's per-language display names and descriptions for these classes."""
    return {
        language: {
            name: {"display_name": display_name(name, language), "description": description(name, language)}
            for name in classes
        }
        for language in LANGUAGES
    }
