"""VLAPolicy: observation dicts in, un-normalised action chunks (numpy) out.

    policy = VLAPolicy.from_pretrained(path, device='cpu', dtype='auto', compile='none')
    actions = policy.predict_action_chunk(observation)        # (chunk, action_dim)
    batch = policy.predict_action_chunk_batch([obs1, obs2])   # (B, chunk, action_dim)
    policy.save_pretrained(out_dir)

``from_pretrained`` reads our own format and upstream VLA-Adapter run directories (those load in
the 'upstream_compat' layout automatically), from a local directory or a Hugging Face Hub repo id
such as 'VLA-Adapter/LIBERO-Spatial-Pro' (see :mod:`vla_adapter_core.checkpoint_source`).

``compile``: 'none' (eager), 'default' or 'max' runs the model through ``torch.compile`` with
static shapes (prompts padded to a few bucket lengths; CUDA graphs on CUDA); see
:class:`vla_adapter_core.config.InferenceConfig`. The first prediction per prompt bucket and
batch size compiles, so run one before the robot moves.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch

from vla_adapter_core.checkpoint import save_checkpoint
from vla_adapter_core.checkpoint_source import KIND_OWN, KIND_UPSTREAM, load_policy_source
from vla_adapter_core.config import InferenceConfig, PolicyConfig
from vla_adapter_core.layout import check_prompt_mask
from vla_adapter_core.modeling import VLAAdapterModel
from vla_adapter_core.normalization import Normalizer
from vla_adapter_core.processor import VLAProcessor
from vla_adapter_core.prompt import load_tokenizer

DTYPES = {'float32': torch.float32, 'fp32': torch.float32, 'bfloat16': torch.bfloat16,
          'bf16': torch.bfloat16, 'float16': torch.float16, 'fp16': torch.float16}
# InferenceConfig.compile -> torch.compile mode, per device type (None: torch's default mode).
TORCH_COMPILE_MODES = {
    ('default', 'cuda'): 'reduce-overhead',  # inductor + CUDA graphs
    ('max', 'cuda'): 'max-autotune',  # autotuned kernels + CUDA graphs
    ('default', 'cpu'): None,
    ('max', 'cpu'): 'max-autotune-no-cudagraphs',
}


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """'auto' -> bfloat16 on CUDA devices that support it, float32 otherwise."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == 'auto':
        if device.type == 'cuda' and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}: expected 'auto' or one of {sorted(DTYPES)}")
    return DTYPES[dtype]


@dataclasses.dataclass
class PolicyPrediction:
    """Actions of a batch: un-normalised (B, chunk, A) float64 and normalised float32."""

    actions: np.ndarray
    normalized_actions: np.ndarray


def torch_compile_mode(compile_option: str, device: torch.device) -> str | None:
    """The ``torch.compile`` mode of an :class:`InferenceConfig` ``compile`` value."""
    device_type = 'cuda' if device.type == 'cuda' else 'cpu'
    return TORCH_COMPILE_MODES[(compile_option, device_type)]


def warmup_calls_needed(compile_option: str, device: torch.device) -> int:
    """Calls of one input shape before a prediction runs at full speed.

    Eager and CPU-compiled policies: 1 (the first call initialises or compiles). CUDA graphs
    (every compiled mode on CUDA): 3, because CUDA Graph Trees run a new graph's first call
    as a warm-up, record it on the second and replay it from the third on.
    """
    if compile_option != 'none' and device.type == 'cuda':
        return 3
    return 1


def pad_prompts(batch: dict, length: int, pad_token_id: int) -> dict:
    """Left-pad ``input_ids`` / ``attention_mask`` (B, L) to (B, ``length``); other keys kept."""
    extra = length - batch['input_ids'].shape[1]
    if extra <= 0:
        return batch
    padded = dict(batch)
    padded['input_ids'] = torch.nn.functional.pad(batch['input_ids'], (extra, 0),
                                                  value=pad_token_id)  # (B, length)
    padded['attention_mask'] = torch.nn.functional.pad(batch['attention_mask'], (extra, 0),
                                                       value=0)  # (B, length)
    return padded


class VLAPolicy:
    """A VLA-Adapter model with its processor and normaliser, ready for inference.

    ``compile``: 'none', 'default' or 'max', or a full :class:`InferenceConfig`.
    """

    def __init__(self, model: VLAAdapterModel, tokenizer, statistics: dict,
                 device: str | torch.device = 'cpu', dtype: str | torch.dtype = 'auto',
                 compile: str | InferenceConfig = 'none') -> None:
        self.config: PolicyConfig = model.config
        self.device = torch.device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.inference = (compile if isinstance(compile, InferenceConfig)
                          else InferenceConfig(compile=compile))
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.tokenizer = tokenizer
        self.statistics = statistics
        self.processor = VLAProcessor.from_config(self.config, tokenizer, statistics,
                                                  device=self.device)
        self.normalizer: Normalizer = self.processor.normalizer
        self._compiled = None
        self._shape_calls: dict = {}  # compiled path: (batch size, prompt bucket) -> calls
        if self.inference.compile != 'none':
            self._compiled = torch.compile(
                self.model.predict_actions, dynamic=False,
                mode=torch_compile_mode(self.inference.compile, self.device))

    @property
    def warmup_calls(self) -> int:
        """Predictions of one input shape before a call runs at full speed.

        See :func:`warmup_calls_needed`; start-up warm-ups run at least this many.
        """
        return warmup_calls_needed(self.inference.compile, self.device)

    def compiles_for(self, instruction: str, batch_size: int = 1) -> bool:
        """Whether calls with ``instruction`` would still compile or record a CUDA graph first.

        Always False for an eager policy. A compiled one is ready for a (batch size, prompt
        bucket) after :attr:`warmup_calls` calls of that shape.
        """
        if self._compiled is None:
            return False
        prompt_length = len(self.processor.prompt_builder.token_ids(instruction))
        shape = (batch_size, self.inference.bucket_length(prompt_length))
        return self._shape_calls.get(shape, 0) < self.warmup_calls

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike,
                        device: str | torch.device = 'cpu', dtype: str | torch.dtype = 'auto',
                        unnorm_key: str | None = None, *, compile: str | InferenceConfig = 'none',
                        revision: str | None = None,
                        cache_dir: str | os.PathLike | None = None,
                        local_files_only: bool = False, **upstream_options) -> VLAPolicy:
        """Load our checkpoint format or an upstream run, from a directory or a Hub repo id.

        ``unnorm_key`` selects another dataset of ``dataset_statistics.json``. ``compile``:
        'none' | 'default' | 'max' (see :class:`InferenceConfig`). ``revision``,
        ``cache_dir``, ``local_files_only``: the Hugging Face Hub download of a repo id.
        ``upstream_options`` (upstream runs only): ``camera_names``, ``overrides``,
        ``prompt_style``, ``center_crop_fraction`` (see
        :func:`vla_adapter_core.upstream.load_upstream_checkpoint`).
        """
        source = load_policy_source(path_or_repo_id, unnorm_key=unnorm_key, revision=revision,
                                    cache_dir=cache_dir, local_files_only=local_files_only,
                                    kinds=(KIND_OWN, KIND_UPSTREAM), **upstream_options)
        model = VLAAdapterModel.from_state_dict(source.config, source.state, source.directory)
        return cls(model, load_tokenizer(source.tokenizer_dir), source.statistics, device=device,
                   dtype=dtype, compile=compile)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write our own format (safetensors + config.json + statistics + tokenizer)."""
        save_checkpoint(directory, self.model, self.config, self.statistics, self.tokenizer)

    def prepare_batch(self, observations: list, *, reuse_buffer: bool = False) -> dict:
        """Processor output (made on the policy's device) in the policy's dtype.

        ``reuse_buffer``: float32 pixels stay in the processor's buffer, overwritten by the
        next such call (the predict path).
        """
        batch = self.processor(observations, reuse_buffer=reuse_buffer)
        moved = {}
        for key, value in batch.items():
            if value.is_floating_point():
                moved[key] = value.to(device=self.device, dtype=self.dtype)
            else:
                moved[key] = value.to(device=self.device)
        return moved

    def run_model(self, batch: dict) -> torch.Tensor:
        """Head predictions (B, chunk, A) for a prepared batch, eager or compiled.

        The compiled path pads the prompts to their bucket (static shapes; our layout puts the
        padding after the last token anyone reads, so the numbers do not change) and checks
        the prompt mask here, outside the graph.
        """
        if self._compiled is None:
            return self.model.predict_actions(batch)
        check_prompt_mask(batch['attention_mask'])
        length = self.inference.bucket_length(batch['input_ids'].shape[1])
        batch = pad_prompts(batch, length, self.processor.prompt_builder.pad_token_id)
        shape = (batch['input_ids'].shape[0], length)
        self._shape_calls[shape] = self._shape_calls.get(shape, 0) + 1
        if self.device.type == 'cuda':
            torch.compiler.cudagraph_mark_step_begin()  # outputs are read before the next call
        return self._compiled(batch)

    def outputs_to_actions(self, predicted: torch.Tensor) -> PolicyPrediction:
        """Head predictions (B, chunk, A) -> un-normalised and normalised numpy actions."""
        values = predicted.detach().float().cpu().numpy()
        actions, normalized = self.normalizer.actions_from_head(
            values, self.model.action_head.output_space)
        return PolicyPrediction(actions=actions, normalized_actions=normalized)

    @torch.inference_mode()
    def predict(self, observations: list) -> PolicyPrediction:
        """Both action forms for a list of observations."""
        batch = self.prepare_batch(observations, reuse_buffer=True)
        return self.outputs_to_actions(self.run_model(batch))

    def predict_action_chunk(self, observation: dict) -> np.ndarray:
        """One observation -> un-normalised actions (chunk, action_dim) float64."""
        if not isinstance(observation, dict):
            raise ValueError(f'observation must be a dict, got {type(observation).__name__}')
        return self.predict([observation]).actions[0]

    def predict_action_chunk_batch(self, observations: list) -> np.ndarray:
        """Observations -> un-normalised actions (B, chunk, action_dim) float64."""
        return self.predict(list(observations)).actions
