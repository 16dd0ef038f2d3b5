"""Configuration dataclasses of the VLA-Adapter core.

One dataclass per component, validated in ``__post_init__`` (``ValueError`` naming the field and
the value), each with ``to_dict()`` / ``from_dict()``. :class:`PolicyConfig` holds the others and
is written as ``config.json`` in every checkpoint, so a checkpoint always rebuilds the architecture
it was trained with. Nothing here reads ``sys.argv`` or the environment.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from vla_adapter_core.heads import ActionHeadConfig
from vla_adapter_core.robot_description import RobotLayout

DINOV2_TIMM_ID = 'vit_large_patch14_reg4_dinov2.lvd142m'
SIGLIP_TIMM_ID = 'vit_so400m_patch14_siglip_224'
# ImageNet statistics rounded to bfloat16, as upstream's saved preprocessor config holds them.
DINOV2_MEAN_BF16 = (0.484375, 0.455078125, 0.40625)
DINOV2_STD_BF16 = (0.228515625, 0.2236328125, 0.224609375)
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)

LAYOUT_ALIGNED = 'aligned'
LAYOUT_UPSTREAM_COMPAT = 'upstream_compat'
LAYOUTS = (LAYOUT_ALIGNED, LAYOUT_UPSTREAM_COMPAT)
PROMPT_STYLES = ('openvla', 'qwen_chat')
NORMALIZATION_MODES = ('bounds', 'bounds_q99')
QUERIES_PER_ARM = 64
MAX_CAMERAS = 4
COMPILE_MODES = ('none', 'default', 'max')
CONFIG_FORMAT = 'vla_adapter_core'
CONFIG_FORMAT_VERSION = 1


def _fail(owner: str, field: str, value: Any, reason: str) -> None:
    raise ValueError(f'{owner}.{field}={value!r}: {reason}')


def _require_positive(owner: str, **fields: int) -> None:
    for name, value in fields.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            _fail(owner, name, value, 'must be a positive integer')


class ConfigDictMixin:
    """``to_dict`` / ``from_dict`` for config dataclasses (lists instead of tuples, JSON-ready).

    Nested config fields become nested dicts; the owning dataclass rebuilds them from dicts in
    its ``__post_init__``.
    """

    def to_dict(self) -> dict:
        """Return a JSON-serialisable dict of the fields."""
        return json_ready(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict):
        """Build from ``to_dict()`` output; unknown keys raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f'{cls.__name__}: unknown config keys {unknown}')
        return cls(**data)


def json_ready(value: Any) -> Any:
    """Turn tuples into lists recursively so the value round-trips through JSON unchanged."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return value


# How towers built from scratch start their position embeddings: timm's random ones, or
# fixed-frequency 2-D sine-cosine (vision.FusedVisionBackbone.init_sincos_positions).
VISION_POSITION_INITS = ('random', 'sincos')


@dataclasses.dataclass
class VisionConfig(ConfigDictMixin):
    """The fused vision backbone: one timm ViT per tower, features concatenated per patch.

    ``tower_kwargs[i]`` is merged into ``timm.create_model(timm_model_ids[i], ...)`` (e.g.
    ``embed_dim``, ``depth``, ``num_heads``, ``mlp_ratio`` for tiny test towers); an empty dict
    builds the real architecture. ``embed_dims[i]`` is the resulting feature width (checked when
    the tower is built). Features come from block ``depth - feature_block_from_end`` with prefix
    tokens dropped and no final norm. ``image_means`` / ``image_stds``: per-tower normalisation.
    """

    timm_model_ids: list = dataclasses.field(
        default_factory=lambda: [DINOV2_TIMM_ID, SIGLIP_TIMM_ID])
    tower_kwargs: list = dataclasses.field(default_factory=lambda: [{}, {}])
    embed_dims: list = dataclasses.field(default_factory=lambda: [1024, 1152])
    image_size: int = 224
    patch_size: int = 14
    feature_block_from_end: int = 2
    image_means: list = dataclasses.field(
        default_factory=lambda: [list(DINOV2_MEAN_BF16), list(SIGLIP_MEAN)])
    image_stds: list = dataclasses.field(
        default_factory=lambda: [list(DINOV2_STD_BF16), list(SIGLIP_STD)])

    def __post_init__(self) -> None:
        owner = 'VisionConfig'
        self.timm_model_ids = list(self.timm_model_ids)
        num_towers = len(self.timm_model_ids)
        if num_towers not in (1, 2):
            _fail(owner, 'timm_model_ids', self.timm_model_ids, 'needs 1 or 2 towers')
        for name in ('tower_kwargs', 'embed_dims', 'image_means', 'image_stds'):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)) or len(value) != num_towers:
                _fail(owner, name, value, f'needs one entry per tower ({num_towers})')
        self.tower_kwargs = [dict(kwargs) for kwargs in self.tower_kwargs]
        self.embed_dims = [int(dim) for dim in self.embed_dims]
        _require_positive(owner, image_size=self.image_size, patch_size=self.patch_size,
                          feature_block_from_end=self.feature_block_from_end)
        if any(dim <= 0 for dim in self.embed_dims):
            _fail(owner, 'embed_dims', self.embed_dims, 'must be positive')
        if self.image_size % self.patch_size:
            _fail(owner, 'image_size', self.image_size,
                  f'must be a multiple of patch_size={self.patch_size}')
        for name in ('image_means', 'image_stds'):
            values = [[float(v) for v in triple] for triple in getattr(self, name)]
            if any(len(triple) != 3 for triple in values):
                _fail(owner, name, values, 'needs 3 values (RGB) per tower')
            setattr(self, name, values)
        if any(v <= 0 for triple in self.image_stds for v in triple):
            _fail(owner, 'image_stds', self.image_stds, 'must be positive')

    @property
    def feature_dim(self) -> int:
        """Channels of one patch feature (sum over towers)."""
        return sum(self.embed_dims)

    @property
    def patches_per_image(self) -> int:
        """Patch tokens per image (256 at 224 px, patch 14)."""
        return (self.image_size // self.patch_size) ** 2


@dataclasses.dataclass
class LLMConfig(ConfigDictMixin):
    """The Qwen2 language model (defaults: Qwen2.5-0.5B).

    ``pretrained_dir`` optionally names a local transformers directory whose weights initialise
    the LLM when a model is built from scratch (never downloaded; checkpoints carry their weights).
    """

    hidden_size: int = 896
    intermediate_size: int = 4864
    num_hidden_layers: int = 24
    num_attention_heads: int = 14
    num_key_value_heads: int = 2
    vocab_size: int = 151936
    max_position_embeddings: int = 32768
    rope_theta: float = 1000000.0
    rms_norm_eps: float = 1e-6
    hidden_act: str = 'silu'
    tie_word_embeddings: bool = True
    attn_implementation: str = 'sdpa'
    pretrained_dir: str | None = None

    def __post_init__(self) -> None:
        owner = 'LLMConfig'
        _require_positive(owner, hidden_size=self.hidden_size,
                          intermediate_size=self.intermediate_size,
                          num_hidden_layers=self.num_hidden_layers,
                          num_attention_heads=self.num_attention_heads,
                          num_key_value_heads=self.num_key_value_heads,
                          vocab_size=self.vocab_size,
                          max_position_embeddings=self.max_position_embeddings)
        if self.hidden_size % self.num_attention_heads:
            _fail(owner, 'num_attention_heads', self.num_attention_heads,
                  f'must divide hidden_size={self.hidden_size}')
        if self.num_attention_heads % self.num_key_value_heads:
            _fail(owner, 'num_key_value_heads', self.num_key_value_heads,
                  f'must divide num_attention_heads={self.num_attention_heads}')
        if not self.rope_theta > 0:
            _fail(owner, 'rope_theta', self.rope_theta, 'must be positive')
        if not self.rms_norm_eps > 0:
            _fail(owner, 'rms_norm_eps', self.rms_norm_eps, 'must be positive')
        if self.attn_implementation not in ('sdpa', 'eager'):
            _fail(owner, 'attn_implementation', self.attn_implementation,
                  "must be 'sdpa' or 'eager'")


@dataclasses.dataclass
class ProjectorConfig(ConfigDictMixin):
    """The fused-gelu-mlp projector: Dv -> 4 Dv -> GELU -> D -> GELU -> D (D = LLM width)."""

    vision_dim: int = 2176
    llm_dim: int = 896
    kind: str = 'fused-gelu-mlp'

    def __post_init__(self) -> None:
        _require_positive('ProjectorConfig', vision_dim=self.vision_dim, llm_dim=self.llm_dim)
        if self.kind != 'fused-gelu-mlp':
            _fail('ProjectorConfig', 'kind', self.kind, "only 'fused-gelu-mlp' is supported")


@dataclasses.dataclass
class NormalizationConfig(ConfigDictMixin):
    """Action / proprio normalisation to [-1, 1].

    ``mode`` 'bounds' uses min/max, 'bounds_q99' uses q01/q99 of ``dataset_statistics.json``'s
    entry ``unnorm_key``; dimensions whose ``mask`` is false pass through unchanged.
    """

    mode: str = 'bounds_q99'
    unnorm_key: str = 'default'
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.mode not in NORMALIZATION_MODES:
            _fail('NormalizationConfig', 'mode', self.mode,
                  f'must be one of {NORMALIZATION_MODES}')
        if not isinstance(self.unnorm_key, str) or not self.unnorm_key:
            _fail('NormalizationConfig', 'unnorm_key', self.unnorm_key,
                  'must be a non-empty string')
        if not self.eps >= 0:
            _fail('NormalizationConfig', 'eps', self.eps, 'must be >= 0')


@dataclasses.dataclass
class ProcessorConfig(ConfigDictMixin):
    """Observation -> tensor conversion (shared by training and inference).

    ``camera_crops`` first cuts a fixed box out of a camera's frame (e.g. the table region of
    ``cam_high``, so a small object spans more of the model's pixels); images of any size are then
    resized to ``image_size``; ``center_crop_fraction`` < 1 then takes a centred crop of that area
    fraction and resizes it back (training with random-resized-crop 0.9 means inference with
    0.9; upstream's fixture uses 1.0 = no crop).
    """

    prompt_style: str = 'openvla'
    lowercase_instruction: bool = True
    center_crop_fraction: float = 1.0
    max_prompt_tokens: int = 256
    # camera -> [top, left, height, width] as fractions of its frame, cut before resizing in
    # training and inference alike; None (checkpoints before it): whole frames.
    camera_crops: dict | None = None

    def __post_init__(self) -> None:
        owner = 'ProcessorConfig'
        if self.prompt_style not in PROMPT_STYLES:
            _fail(owner, 'prompt_style', self.prompt_style, f'must be one of {PROMPT_STYLES}')
        if not 0.0 < float(self.center_crop_fraction) <= 1.0:
            _fail(owner, 'center_crop_fraction', self.center_crop_fraction, 'must be in (0, 1]')
        _require_positive(owner, max_prompt_tokens=self.max_prompt_tokens)
        if self.camera_crops is not None:
            self.camera_crops = _checked_camera_crops(self.camera_crops)


def _checked_camera_crops(crops: Any) -> dict:
    """``crops`` as camera -> [top, left, height, width] floats, or ValueError naming it."""
    field = 'camera_crops'
    if not isinstance(crops, dict) or not crops:
        _fail('ProcessorConfig', field, crops, 'must be a non-empty dict camera -> box (or None)')
    checked = {}
    for camera, box in crops.items():
        try:
            values = [float(value) for value in box]
        except (TypeError, ValueError):
            values = []
        top, left, height, width = values if len(values) == 4 else (-1.0,) * 4
        if not (top >= 0 and left >= 0 and height > 0 and width > 0
                and top + height <= 1 + 1e-9 and left + width <= 1 + 1e-9):
            _fail('ProcessorConfig', f'{field}[{camera!r}]', box,
                  'must be [top, left, height, width], fractions of the frame inside [0, 1]')
        checked[str(camera)] = values
    return checked


@dataclasses.dataclass
class InferenceConfig(ConfigDictMixin):
    """How a loaded policy runs: a deployment choice, given to ``VLAPolicy.from_pretrained``.

    Not part of the architecture, so not in ``config.json``; the inference node records it
    with its own parameters.

    ``compile``: 'none' runs eagerly. 'default' runs the model through ``torch.compile``
    (inductor); on CUDA with CUDA graphs (mode 'reduce-overhead'). 'max' uses mode
    'max-autotune' (autotuned kernels; CUDA graphs on CUDA) - slower to compile. Compiled
    graphs have static shapes: every prompt is padded to the smallest of ``prompt_buckets``
    that holds it (longer prompts: the next multiple of the largest bucket), so a few graphs
    serve every instruction. The first prediction of each bucket and batch size compiles
    (tens of seconds); run one at start-up (the inference node's ``warmup_runs``).
    """

    compile: str = 'none'
    prompt_buckets: tuple = (32, 64, 128, 256)

    def __post_init__(self) -> None:
        owner = 'InferenceConfig'
        if self.compile not in COMPILE_MODES:
            _fail(owner, 'compile', self.compile, f'must be one of {COMPILE_MODES}')
        buckets = tuple(self.prompt_buckets)
        if not buckets or any(not isinstance(b, int) or isinstance(b, bool) or b <= 0
                              for b in buckets) or list(buckets) != sorted(set(buckets)):
            _fail(owner, 'prompt_buckets', self.prompt_buckets,
                  'must be increasing positive integers')
        self.prompt_buckets = buckets

    def bucket_length(self, length: int) -> int:
        """The padded prompt length for a prompt of ``length`` tokens."""
        for bucket in self.prompt_buckets:
            if length <= bucket:
                return bucket
        largest = self.prompt_buckets[-1]
        return -(-length // largest) * largest


@dataclasses.dataclass
class PolicyConfig:
    """Everything needed to rebuild a policy: the component configs plus robot-facing sizes.

    ``camera_names`` fixes the order images are fed to the model (1 to 4 cameras).
    ``layout`` is 'aligned' for our own models and 'upstream_compat' (upstream's off-by-one
    windows, ``upstream_num_task_tokens`` split, bf16 roundings and the trailing
    ``upstream_stop_token_id`` token) for upstream checkpoints. ``robot_layout`` names each
    action / proprio dimension the policy was trained on (None: unknown, e.g. upstream
    checkpoints); the robot side refuses a checkpoint whose layout differs from its own.
    """

    vision: VisionConfig = dataclasses.field(default_factory=VisionConfig)
    llm: LLMConfig = dataclasses.field(default_factory=LLMConfig)
    projector: ProjectorConfig = dataclasses.field(default_factory=ProjectorConfig)
    action_head: ActionHeadConfig = dataclasses.field(default_factory=ActionHeadConfig)
    normalization: NormalizationConfig = dataclasses.field(default_factory=NormalizationConfig)
    processor: ProcessorConfig = dataclasses.field(default_factory=ProcessorConfig)
    camera_names: list = dataclasses.field(default_factory=lambda: ['cam_high'])
    proprio_dim: int = 14
    layout: str = LAYOUT_ALIGNED
    upstream_num_task_tokens: int = 512
    upstream_stop_token_id: int = 2
    robot_layout: RobotLayout | None = None

    def __post_init__(self) -> None:
        owner = 'PolicyConfig'
        if isinstance(self.robot_layout, dict):
            self.robot_layout = RobotLayout.from_dict(self.robot_layout)
        if self.robot_layout is not None and (
                len(self.robot_layout.action_names) != self.action_dim
                or len(self.robot_layout.proprio_names) != self.proprio_dim):
            _fail(owner, 'robot_layout', self.robot_layout.to_dict(),
                  f'must name action_dim={self.action_dim} and proprio_dim={self.proprio_dim} '
                  'dimensions')
        self.camera_names = [str(name) for name in self.camera_names]
        if not 1 <= len(self.camera_names) <= MAX_CAMERAS:
            _fail(owner, 'camera_names', self.camera_names, f'needs 1 to {MAX_CAMERAS} cameras')
        if len(set(self.camera_names)) != len(self.camera_names):
            _fail(owner, 'camera_names', self.camera_names, 'names must be unique')
        unknown = sorted(set(self.processor.camera_crops or {}) - set(self.camera_names))
        if unknown:
            _fail(owner, 'processor.camera_crops', self.processor.camera_crops,
                  f'crops cameras {unknown} that are not in camera_names {self.camera_names}')
        _require_positive(owner, proprio_dim=self.proprio_dim,
                          upstream_num_task_tokens=self.upstream_num_task_tokens)
        if not 0 <= self.upstream_stop_token_id < self.llm.vocab_size:
            _fail(owner, 'upstream_stop_token_id', self.upstream_stop_token_id,
                  f'must be a token id below vocab_size={self.llm.vocab_size}')
        if self.layout not in LAYOUTS:
            _fail(owner, 'layout', self.layout, f'must be one of {LAYOUTS}')
        if self.projector.vision_dim != self.vision.feature_dim:
            _fail(owner, 'projector.vision_dim', self.projector.vision_dim,
                  f'must equal the vision feature dim {self.vision.feature_dim}')
        if self.projector.llm_dim != self.llm.hidden_size:
            _fail(owner, 'projector.llm_dim', self.projector.llm_dim,
                  f'must equal llm.hidden_size={self.llm.hidden_size}')
        self._validate_head()

    def _validate_head(self) -> None:
        owner = 'PolicyConfig'
        head = self.action_head
        if head.hidden_dim != self.llm.hidden_size:
            _fail(owner, 'action_head.hidden_dim', head.hidden_dim,
                  f'must equal llm.hidden_size={self.llm.hidden_size}')
        if head.num_blocks > self.llm.num_hidden_layers:
            _fail(owner, 'action_head.num_blocks', head.num_blocks,
                  f'exceeds llm.num_hidden_layers={self.llm.num_hidden_layers}')
        if self.layout == LAYOUT_UPSTREAM_COMPAT and head.num_blocks != self.llm.num_hidden_layers:
            _fail(owner, 'action_head.num_blocks', head.num_blocks,
                  'upstream_compat needs one head block per LLM layer '
                  f'({self.llm.num_hidden_layers})')
        if self.layout == LAYOUT_UPSTREAM_COMPAT and head.kind != 'l1':
            _fail(owner, 'layout', self.layout, f'upstream_compat supports only the l1 head, '
                  f'not {head.kind!r}')

    @property
    def use_proprio(self) -> bool:
        """Whether the robot state enters the head as a projected token."""
        return self.action_head.use_proprio

    @property
    def num_action_queries(self) -> int:
        """Action-query tokens appended to the prompt (64 per arm)."""
        arms = 2 if self.action_head.kind == 'dual_arm' else 1
        return self.action_head.queries_per_arm * arms

    @property
    def action_dim(self) -> int:
        """Dimension of one action."""
        return self.action_head.action_dim

    @property
    def chunk_size(self) -> int:
        """Actions per predicted chunk."""
        return self.action_head.chunk_size

    @property
    def num_cameras(self) -> int:
        """Images per observation."""
        return len(self.camera_names)

    def to_dict(self) -> dict:
        """Return the JSON-ready dict written as ``config.json``."""
        data = {
            'format': CONFIG_FORMAT,
            'format_version': CONFIG_FORMAT_VERSION,
        }
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            data[field.name] = value.to_dict() if hasattr(value, 'to_dict') else json_ready(
                dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> PolicyConfig:
        """Rebuild from :meth:`to_dict` output."""
        data = dict(data)
        fmt = data.pop('format', CONFIG_FORMAT)
        version = data.pop('format_version', CONFIG_FORMAT_VERSION)
        data.pop('provenance', None)  # informational: revision and library versions
        if fmt != CONFIG_FORMAT:
            raise ValueError(f'config format={fmt!r}: expected {CONFIG_FORMAT!r}')
        if version != CONFIG_FORMAT_VERSION:
            raise ValueError(f'config format_version={version!r}: this code reads '
                             f'{CONFIG_FORMAT_VERSION}')
        sections = {'vision': VisionConfig, 'llm': LLMConfig, 'projector': ProjectorConfig,
                    'action_head': ActionHeadConfig, 'normalization': NormalizationConfig,
                    'processor': ProcessorConfig}
        for name, section_cls in sections.items():
            if name in data:
                data[name] = _section_from_dict(section_cls, data[name])
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f'PolicyConfig: unknown config keys {unknown}')
        return cls(**data)


def _section_from_dict(section_cls, data: dict):
    if hasattr(section_cls, 'from_dict'):
        return section_cls.from_dict(data)
    return section_cls(**data)


def tower_feature_block_index(depth: int, feature_block_from_end: int) -> int:
    """Index of the block whose output is used as the patch feature (second-to-last by default)."""
    index = depth - feature_block_from_end
    if index < 0:
        raise ValueError(f'feature_block_from_end={feature_block_from_end} exceeds tower depth '
                         f'{depth}')
    return index


def mlp_ratio_for_hidden(embed_dim: int, mlp_hidden: int) -> float:
    """An ``mlp_ratio`` for which timm's ``int(embed_dim * mlp_ratio)`` gives ``mlp_hidden``."""
    ratio = (mlp_hidden + 0.5) / embed_dim
    assert math.floor(embed_dim * ratio) == mlp_hidden
    return ratio
