"""Real documents for the LocalDocs tests, written into a folder by the tests.

Every supported kind (Markdown, plain text, reStructuredText, Python, HTML, DOCX made with
python-docx, PDF made with fpdf2) on its own topic, a set of files LocalDocs must refuse
without crashing, a folder of many generated notes for the crash tests, and a small labelled
question set for comparing retrieval modes.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

BEEKEEPING_MD = """\
# Keeping Honey Bees

Beekeeping is the care of honey bee colonies in man-made hives. A keeper opens the hive
every week or two during the warm months to check that the queen is laying, that the brood
looks healthy and that the bees have enough room to store nectar.

## The Colony

A colony holds a single queen, a few hundred drones and tens of thousands of worker bees.
The workers are all female. Young workers clean cells and feed larvae; older workers guard
the entrance and, in the last weeks of their lives, forage for nectar, pollen and water.

The queen can lay more than a thousand eggs a day in early summer. Drones exist only to
mate with virgin queens from other colonies and are expelled before the cold season.

## Swarming

Swarming is how a colony reproduces. When the hive becomes crowded the workers raise new
queens, and the old queen leaves with about half of the bees to find a new home. Keepers
prevent swarms by giving the colony more boxes or by splitting it into two hives.

## Wintering

Honey bees do not hibernate. In winter they form a tight cluster around the queen and
shiver their flight muscles to keep the centre of the cluster near thirty-five degrees
Celsius. The cluster slowly moves across the comb, eating the honey stored in autumn, so a
colony needs fifteen to twenty-five kilograms of honey to survive until spring.
"""

LIGHTHOUSE_TXT = """\
The Keeper of Gull Point Light

For forty-one years the light on Gull Point was kept by the Marsh family. Every evening at
sunset the keeper climbed the one hundred and twelve steps of the spiral staircase, trimmed
the wick, polished the brass and lit the lamp.

The lamp itself was small. What made the light visible twenty nautical miles out to sea was
the great Fresnel lens that surrounded it: a beehive of glass prisms, first order, more than
two metres tall, that bent the light of a single flame into a horizontal beam. The lens
floated on a bath of mercury so that a clockwork weight could turn it, and the flashing
pattern of the light told passing ships which headland they were looking at.

In fog the keeper also ran the fog signal, a steam whistle that sounded two blasts every
thirty seconds. During the great storm of 1893 the keeper's daughter kept the whistle going
for three days without sleep while her father rowed out to the wreck of the schooner Alma.

The light was automated in 1962. The lens was removed to the county museum, where visitors
can still walk around it, and an electric beacon on a steel mast now stands in its place.
"""

VOLCANOES_RST = """\
==========
Volcanoes
==========

A volcano is an opening in the crust of a planet through which molten rock, ash and gases
escape from below the surface.

Shield volcanoes
================

Shield volcanoes are built almost entirely from fluid basalt lava flows. Because the lava
runs far before it cools, they have broad, gentle slopes that look like a warrior's shield
lying on the ground. Mauna Loa in Hawaii is the largest example.

Stratovolcanoes
===============

Stratovolcanoes are steep cones built from alternating layers of lava, ash and volcanic
rock. Their sticky, gas-rich magma tends to erupt explosively, producing pyroclastic flows
that race down the slopes at more than one hundred kilometres per hour.

Monitoring
==========

Volcanologists watch for warning signs before an eruption. Seismometers record swarms of
small earthquakes as magma forces its way upwards; tiltmeters and satellite radar measure
how the ground swells; gas sensors track rising sulfur dioxide emissions. Together these
measurements allow observatories to issue alerts days or weeks before a major eruption.
"""

SOURDOUGH_PY = '''\
"""Helpers for baking sourdough bread.

A sourdough starter is a culture of wild yeast and lactic acid bacteria kept alive by
regular feedings of flour and water.
"""


def feed_starter(starter_grams: float, ratio: int = 1) -> tuple[float, float]:
    """Return the grams of flour and water for feeding a sourdough starter.

    A 1:1:1 feeding mixes equal weights of starter, flour and water. Feed the starter
    once a day when it lives in the fridge, twice a day on the kitchen counter.
    """
    flour = starter_grams * ratio
    water = starter_grams * ratio
    return flour, water


def hydration_percent(water_grams: float, flour_grams: float) -> float:
    """Compute dough hydration: the weight of water divided by the weight of flour.

    A country loaf is usually around seventy-five percent hydration; wetter doughs give
    a more open crumb but are harder to shape.
    """
    if flour_grams <= 0:
        raise ValueError("flour_grams must be positive")
    return 100.0 * water_grams / flour_grams


def proofing_hours(room_celsius: float) -> float:
    """Estimate the bulk fermentation time of sourdough at a given room temperature."""
    return max(3.0, 12.0 - 0.35 * (room_celsius - 18.0) * 3.0)
'''

CHESS_HTML = """\
<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Chess Openings for Beginners</title>
<style>body { font-family: serif; }</style>
<script>console.log("not part of the text");</script>
</head>
<body>
<nav><a href="/">Home</a></nav>
<h1>Chess Openings for Beginners</h1>
<p>The opening is the first phase of a chess game. Good openings develop the knights and
bishops quickly, fight for the centre of the board and get the king to safety by castling.</p>
<h2>The Sicilian Defence</h2>
<p>The Sicilian Defence begins 1.e4 c5. Black answers the king's pawn by attacking the d4
square from the side instead of mirroring White's move. It leads to sharp, unbalanced
positions and is the most popular reply to 1.e4 among grandmasters.</p>
<h2>The Queen's Gambit</h2>
<p>In the Queen's Gambit, 1.d4 d5 2.c4, White offers a pawn to pull Black's d-pawn away from
the centre. Black can accept the gambit or decline it with 2...e6, the solid Orthodox
Defence.</p>
</body>
</html>
"""

GLACIERS_DOCX = [
    ("heading", "How Glaciers Shape the Land"),
    ("para", "A glacier forms where more snow falls in winter than melts in summer. Year after "
             "year the snow is buried and compressed into dense blue glacial ice, which begins "
             "to flow downhill under its own weight."),
    ("heading2", "Erosion"),
    ("para", "As it moves, a glacier plucks boulders from its bed and grinds the rock beneath "
             "it, carving U-shaped valleys, cirques and fjords."),
    ("heading2", "Moraines"),
    ("para", "A moraine is a ridge of unsorted rock debris, called till, that a glacier pushes "
             "ahead of itself or leaves along its sides. When the ice retreats, the terminal "
             "moraine marks the furthest point the glacier ever reached."),
]

ASTRONOMY_PDF_PAGES = [
    ("Comets",
     "Comets are frozen bodies of ice and dust that orbit the Sun on long elliptical paths. "
     "When a comet comes close to the Sun its ice turns to gas, forming a glowing coma and a "
     "tail that always points away from the Sun. Halley's Comet returns every seventy-six years."),
    ("The Rings of Saturn",
     "Saturn's rings are made of countless particles of water ice mixed with a little rock "
     "and dust. The particles range from grains smaller than sand to chunks as large as a "
     "house. Although the rings are more than two hundred thousand kilometres wide, they are "
     "in most places only about ten metres thick."),
    ("Sunspots",
     "Sunspots are dark, cooler patches on the surface of the Sun where strong magnetic fields "
     "block the flow of heat from below. The number of sunspots rises and falls over an "
     "eleven-year solar cycle, and solar flares often erupt near large sunspot groups."),
]


@dataclass(frozen=True)
class Probe:
    """A query about one document: the file (name) and, for the PDF, the page it is on."""

    query: str
    file: str
    page: int | None = None
    phrase: str = ""  # text the best chunk must contain


PROBES = [
    Probe("How do honey bees survive the winter cluster?", "beekeeping.md",
          phrase="form a tight cluster"),
    Probe("What Fresnel lens did the lighthouse keeper use?", "lighthouse.txt",
          phrase="Fresnel lens"),
    Probe("How do volcanologists monitor volcanoes before an eruption?", "volcanoes.rst",
          phrase="Seismometers"),
    Probe("how to compute the hydration of sourdough dough", "sourdough.py",
          phrase="hydration"),
    Probe("Which chess opening answers 1.e4 with c5, the Sicilian?", "chess.html",
          phrase="Sicilian Defence begins"),
    Probe("What is a glacier moraine made of?", "glaciers.docx", phrase="moraine is a ridge"),
    Probe("What are the rings of Saturn made of?", "astronomy.pdf", page=2,
          phrase="water ice"),
    Probe("Why do sunspots appear dark on the Sun?", "astronomy.pdf", page=3,
          phrase="Sunspots are dark"),
]

KINDS = ("beekeeping.md", "lighthouse.txt", "volcanoes.rst", "sourdough.py", "chess.html",
         "glaciers.docx", "astronomy.pdf")


def write_docx(path: Path, blocks: list[tuple[str, str]]) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = ""
    for kind, text in blocks:
        if kind == "heading":
            document.add_heading(text, level=1)
        elif kind == "heading2":
            document.add_heading(text, level=2)
        else:
            document.add_paragraph(text)
    document.save(str(path))


def write_pdf(path: Path, pages: list[tuple[str, str]]) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title("Notes on the Solar System")
    for heading, body in pages:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 16)
        pdf.cell(0, 10, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=12)
        pdf.multi_cell(0, 7, body)
    pdf.output(str(path))


def write_kinds(folder: Path) -> dict[str, Path]:
    """One document of every supported kind; returns {file name: absolute path}."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "beekeeping.md").write_text(BEEKEEPING_MD, encoding="utf-8")
    (folder / "lighthouse.txt").write_text(LIGHTHOUSE_TXT, encoding="utf-8")
    (folder / "volcanoes.rst").write_text(VOLCANOES_RST, encoding="utf-8")
    (folder / "sourdough.py").write_text(SOURDOUGH_PY, encoding="utf-8")
    (folder / "chess.html").write_text(CHESS_HTML, encoding="utf-8")
    write_docx(folder / "glaciers.docx", GLACIERS_DOCX)
    write_pdf(folder / "astronomy.pdf", ASTRONOMY_PDF_PAGES)
    return {name: Path(os.path.abspath(folder / name)) for name in KINDS}


TEXT_DOCS = {"beekeeping.md": BEEKEEPING_MD, "lighthouse.txt": LIGHTHOUSE_TXT,
             "volcanoes.rst": VOLCANOES_RST, "sourdough.py": SOURDOUGH_PY}


def write_texts(folder: Path, names: tuple[str, ...] = tuple(TEXT_DOCS)) -> dict[str, Path]:
    """Some of the line-based documents (fast to index); returns {file name: absolute path}."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text(TEXT_DOCS[name], encoding="utf-8")
    return {name: Path(os.path.abspath(folder / name)) for name in names}


#: Bad files written by :func:`write_bad_files` and a substring of the reason LocalDocs gives.
BAD_FILES = {
    "blob.txt": "binary file",
    "empty.md": "empty file",
    "broken.pdf": "corrupt PDF",
    "broken.docx": "corrupt DOCX",
    "huge.txt": "file too large",
    "loop_a.md": "symbolic link loop",
    "loop_b.md": "symbolic link loop",
    "dangling.txt": "broken symbolic link",
    "pipe.txt": "not a regular file (FIFO)",
    os.path.join("nested", "again"): "symbolic link loop",
}
#: max_file_bytes to pass to index() so that huge.txt is refused and every good file fits.
MAX_FILE_BYTES = 64_000


def write_bad_files(folder: Path) -> None:
    """Files LocalDocs must report in ``skipped`` (see :data:`BAD_FILES`)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "blob.txt").write_bytes(bytes(range(256)) * 16)
    (folder / "empty.md").write_bytes(b"")
    (folder / "broken.pdf").write_bytes(
        b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n" + b"\x8f\x00garbage" * 40)
    (folder / "broken.docx").write_bytes(b"PK\x03\x04 this is not really a zip archive")
    line = "All work and no play makes a very large text file that nobody wants to embed.\n"
    (folder / "huge.txt").write_text(line * (2 * MAX_FILE_BYTES // len(line)), encoding="utf-8")
    os.symlink("loop_b.md", folder / "loop_a.md")
    os.symlink("loop_a.md", folder / "loop_b.md")
    os.symlink("missing-target.txt", folder / "dangling.txt")
    os.mkfifo(folder / "pipe.txt")
    (folder / "nested").mkdir()
    (folder / "nested" / "inside.md").write_text(
        "# Nested notes\n\nA note in a sub-folder about tide pools and sea anemones.\n",
        encoding="utf-8")
    os.symlink("..", folder / "nested" / "again")


# --------------------------------------------------------------------------- many notes

_SUBJECTS = [
    "red fox", "barn owl", "river otter", "grey heron", "badger", "hedgehog", "roe deer",
    "kingfisher", "dormouse", "peregrine falcon", "water vole", "pine marten", "brown hare",
    "common toad", "great crested newt", "stag beetle", "swallowtail butterfly", "nightjar",
    "harbour seal", "puffin", "red squirrel", "adder", "slow worm", "natterjack toad",
    "osprey", "curlew", "lapwing", "skylark", "wild boar", "beaver", "polecat", "wildcat",
    "golden eagle", "ptarmigan", "mountain hare", "corncrake", "bittern", "avocet",
    "little egret", "hazel grouse",
]
_HABITATS = ["oak woodland", "chalk downland", "salt marsh", "upland bog", "river meadow",
             "pine forest", "coastal cliff", "heather moor"]
_MONTHS = ["January", "March", "April", "May", "June", "August", "September", "November"]


def note_text(i: int) -> tuple[str, str]:
    """The (file name, text) of field note ``i``: one short paragraph of prose (one chunk at
    64 tokens), and every fourth note a second one (several chunks). Kept short: embedding
    is the cost of the crash tests, which index these notes a dozen times."""
    subject = _SUBJECTS[i % len(_SUBJECTS)]
    habitat = _HABITATS[i % len(_HABITATS)]
    month = _MONTHS[(i * 3) % len(_MONTHS)]
    count = 3 + (i * 7) % 11
    ext = (".md", ".txt", ".rst")[i % 3]
    title = f"Field note {i:02d}: the {subject}"
    paragraphs = [
        f"In {month} we walked the transect through the {habitat} and counted {count} "
        f"sightings of the {subject}, {'more' if count > 7 else 'fewer'} than last year.",
    ]
    if i % 4 == 0:
        paragraphs.append(
            f"The {subject} was most often seen near the edge of the {habitat}, where cover "
            f"meets open ground. Tracks in the mud by the stream suggested at least two "
            f"individuals, and the water level in the ditches was {'high' if i % 8 else 'low'}. "
            f"The warden proposes cutting back the scrub in late autumn so that the {subject} "
            f"keeps its open feeding areas.")
    if ext == ".md":
        text = f"# {title}\n\n" + "\n\n".join(_wrap(p) for p in paragraphs) + "\n"
    elif ext == ".rst":
        text = f"{title}\n{'=' * len(title)}\n\n" + "\n\n".join(_wrap(p) for p in paragraphs) + "\n"
    else:
        text = f"{title}\n\n" + "\n\n".join(_wrap(p) for p in paragraphs) + "\n"
    return f"note{i:02d}{ext}", text


def write_notes(folder: Path, n: int = 40) -> list[Path]:
    """``n`` generated field notes; returns their absolute paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        name, text = note_text(i)
        (folder / name).write_text(text, encoding="utf-8")
        paths.append(Path(os.path.abspath(folder / name)))
    return paths


def _wrap(paragraph: str) -> str:
    return textwrap.fill(paragraph, width=88)


# --------------------------------------------------------------------------- labelled set

LABELLED_DOCS = {
    "tea.md": """\
# Growing Tea

Tea comes from the leaves of Camellia sinensis, an evergreen shrub that grows best on
well-drained, acidic hillsides with plenty of rain. Pickers take only the top two leaves
and a bud. Green tea is steamed or pan-fired soon after picking to stop oxidation, while
black tea is rolled and left to oxidise fully before it is dried.
""",
    "bicycle.txt": """\
Maintaining a Bicycle Chain

A clean, lubricated chain makes a bicycle quieter and makes the gears last longer. Wipe the
chain with a rag, scrub it with degreaser if it is gritty, then apply one drop of chain oil
to every roller and wipe off the excess. Measure chain stretch with a chain checker: replace
the chain once it has stretched by half a percent, before it wears out the cassette.
""",
    "router.md": """\
# Troubleshooting the NX-7 Router

If the status light blinks amber and the log shows error code E-4471, the router has lost
its upstream connection. Power-cycle the modem first, wait two minutes, then restart the
NX-7. If E-4471 persists, reset the router by holding the recessed button for ten seconds
and restore the saved configuration file.
""",
    "sleep.txt": """\
Why We Sleep

During deep sleep the brain consolidates memories and clears away metabolic waste. Adults
need seven to nine hours a night. Keeping a regular bedtime, avoiding screens late in the
evening and keeping the bedroom cool and dark all make it easier to fall asleep and to stay
asleep until morning.
""",
    "tax.rst": """\
Filing the Quarterly VAT Return
===============================

Businesses registered for value added tax file a return every quarter. The return reports
the VAT charged on sales and the VAT paid on purchases; the difference is paid to the tax
office, or refunded when purchases exceed sales. Form VR-12 must be submitted within thirty
days after the end of the quarter.
""",
    "whales.md": """\
# Humpback Whale Songs

Male humpback whales sing long, complex songs during the breeding season. A song is made of
repeated themes and can last twenty minutes; all males in one ocean sing nearly the same
song, which slowly changes from year to year. Scientists think the songs help attract
females or establish rank among males.
""",
    "bread.txt": """\
Kneading Bread Dough

Kneading stretches and folds the dough so that gluten strands form a strong elastic network
that traps the gas produced by yeast. Push the dough away with the heel of your hand, fold it
back, turn it a quarter and repeat for about ten minutes, until the dough is smooth and a thin
piece can be stretched until light shows through it.
""",
    "python_gil.md": """\
# The Global Interpreter Lock

CPython's global interpreter lock lets only one thread execute Python bytecode at a time.
Threads still help with input and output, because the lock is released while waiting for
the network or the disk, but CPU-bound work needs multiprocessing or native extensions that
release the lock to use several cores.
""",
    "roman_roads.txt": """\
Roman Roads

The Romans built more than eighty thousand kilometres of paved roads. A road had layers: a
foundation of large stones, a bed of gravel and lime, and a surface of tightly fitted paving
slabs, cambered so that rain ran off into ditches on both sides. Milestones told travellers
the distance to the next town.
""",
    "coral.md": """\
# Coral Bleaching

Corals live in partnership with tiny algae that supply them with food. When the sea becomes
too warm, the stressed corals expel the algae and turn white. Bleached coral is not dead, but
if high temperatures last for weeks the corals starve, and the reef that shelters thousands
of species of fish begins to collapse.
""",
    # Distractors: near neighbours of the answers above.
    "router_nx9.md": """\
# Troubleshooting the NX-9 Router

When the NX-9 shows error code E-4417 on its display, a firmware update failed to verify.
Download the firmware again and install it over the wired connection. Error E-7144 means the
router overheated: move it away from other electronics and make sure its vents are not
blocked before switching it back on.
""",
    "coffee.md": """\
# Growing Coffee

Coffee plants grow in the shade of taller trees in tropical highlands. The cherries ripen
unevenly, so pickers return to the same bushes several times. After harvest the seeds are
washed or dried in the sun, then roasted: light roasts keep fruity flavours, dark roasts
taste of chocolate and smoke.
""",
    "motorcycle.txt": """\
Adjusting Motorcycle Chain Tension

A motorcycle chain needs some slack: check the vertical play halfway between the sprockets
with the bike on its side stand. Loosen the rear axle nut, turn both adjusters by the same
amount so the wheel stays aligned, and tighten the axle nut to the torque in the manual.
""",
    "pizza.txt": """\
Stretching Pizza Dough

Let the dough balls rest at room temperature for an hour before shaping. Press the centre
flat with your fingertips, leaving a thick rim for the crust, then lift the disc over your
knuckles and let gravity stretch it. Never use a rolling pin: it pushes the air out of the rim.
""",
    "dolphins.md": """\
# How Dolphins Use Echolocation

Dolphins find prey by sending out rapid clicks and listening for the echoes. The clicks are
focused by the melon, a fatty organ in the forehead, and the echoes are received through the
lower jaw. Each dolphin also has a signature whistle that works like a name.
""",
}

#: (question, answer file): paraphrased questions, and a few that need an exact code.
LABELLED_QUESTIONS = [
    ("How are green tea leaves processed differently from black tea?", "tea.md"),
    ("When should I replace a worn bike chain?", "bicycle.txt"),
    ("What does E-4471 mean?", "router.md"),
    ("How many hours of rest does a grown-up need each night?", "sleep.txt"),
    ("What is form VR-12 and when is it due?", "tax.rst"),
    ("Why do male humpbacks sing?", "whales.md"),
    ("How long should I work the dough with my hands?", "bread.txt"),
    ("Can threads run Python code on several CPU cores at once?", "python_gil.md"),
    ("How were ancient Roman highways constructed?", "roman_roads.txt"),
    ("What happens to reefs when the ocean heats up?", "coral.md"),
    ("What should I do about E-7144?", "router_nx9.md"),
    ("The light on my NX-7 keeps flashing amber", "router.md"),
]


def write_labelled(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, text in LABELLED_DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
        out[name] = Path(os.path.abspath(folder / name))
    return out
