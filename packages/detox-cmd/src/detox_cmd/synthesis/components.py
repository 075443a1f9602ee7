"""The models a synthesis run needs, loaded lazily from the config's specs (or given by tests)."""

from __future__ import annotations

from detox_cmd.synthesis.config import SynthesisConfig
from detox_cmd.synthesis.detectors import ScorerDetector, load_detector
from detox_cmd.synthesis.masking import Detector
from detox_cmd.synthesis.rephrasing import Rephraser, load_rephraser
from detox_cmd.synthesis.similarity import SentenceEmbedder, SimilarityFn
from detox_core.models import LoadedModel, ModelOptions, load_model, resolve_device
from detox_core.scoring import ToxicityScorer, load_scorer


class Components:
    """Detector, scorer, rephraser, similarity and base LM, each loaded on first use.

    A causal rephraser on the same spec as ``--model`` reuses the loaded base model.
    """

    def __init__(
        self,
        config: SynthesisConfig,
        *,
        detector: Detector | None = None,
        scorer: ToxicityScorer | None = None,
        rephraser: Rephraser | None = None,
        similarity: SimilarityFn | None = None,
        lm: LoadedModel | None = None,
    ) -> None:
        self.config = config
        self._detector = detector
        self._scorer = scorer
        self._rephraser = rephraser
        self._similarity = similarity
        self._lms: dict[str, LoadedModel] = {}
        if lm is not None:
            self._lms[config.model] = lm

    def scorer(self) -> ToxicityScorer:
        """The toxicity scorer (``--scorer``)."""
        if self._scorer is None:
            self._scorer = load_scorer(self.config.scorer)
        return self._scorer

    def detector(self) -> Detector:
        """The toxic-span detector (``--detector``)."""
        if self._detector is None:
            self._detector = load_detector(self.config.detector, self.scorer(), self.config.device)
        return self._detector

    def detector_label(self) -> str | None:
        """``name@version`` of the detector once loaded (None before: nothing was masked)."""
        detector = self._detector
        if detector is None:
            return None
        if isinstance(detector, ScorerDetector):
            return f"scorer:{detector.scorer.name}@{detector.scorer.version}"
        name = getattr(detector, "name", type(detector).__name__)
        return f"{name}@{getattr(detector, 'version', 'unknown')}"

    def load_lm(self, spec: str) -> LoadedModel:
        """A causal LM by spec, loaded once."""
        if spec not in self._lms:
            options = ModelOptions(device=self.config.device, dtype=self.config.dtype)
            self._lms[spec] = load_model(spec, options)
        return self._lms[spec]

    def lm(self) -> LoadedModel:
        """The base model that generates the continuations (``--model``)."""
        return self.load_lm(self.config.model)

    def rephraser(self) -> Rephraser:
        """The mask filler (``--rephraser``)."""
        if self._rephraser is None:
            device = str(resolve_device(self.config.device))
            self._rephraser = load_rephraser(self.config.rephraser, self.load_lm, device)
        return self._rephraser

    def similarity(self) -> SimilarityFn:
        """Cosine similarity of sentence embeddings (MiniLM by default)."""
        if self._similarity is None:
            device = str(resolve_device(self.config.device))
            embedder = SentenceEmbedder(self.config.similarity_model, device=device)
            self._similarity = embedder.similarity
        return self._similarity
