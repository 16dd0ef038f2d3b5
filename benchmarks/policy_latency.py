"""Latency of VLAPolicy.predict_action_chunk with a per-stage breakdown.

Prints median and p90 over repeated calls for:
  * a tiny random policy on the CPU (always), and
  * the real VLA-Adapter sizes (DINOv2-L + SigLIP-so400m, Qwen2.5-0.5B, 24-block head) with random
    weights on CUDA in bf16, when a GPU is present;
and the real-size parameter counts, built on the meta device (no memory, no weights).

Stages: preprocess (processor + host-to-device), vision (towers + projector), llm (embedding,
sequence assembly, Qwen2, window gathering), head (proprio projector + action head),
postprocess (device-to-host + un-normalisation).

    .venv/bin/python benchmarks/policy_latency.py [--runs 20] [--cameras 3] [__skip_real]
"""

import argparse
from pathlib import Path
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vla_adapter_core.config import (  # noqa: E402
    LLMConfig,
    PolicyConfig,
    ProjectorConfig,
    VisionConfig,
)
from vla_adapter_core.heads import ActionHeadConfig  # noqa: E402
from vla_adapter_core.layout import assemble_sequence, gather_windows  # noqa: E402
from vla_adapter_core.modeling import VLAAdapterModel  # noqa: E402
from vla_adapter_core.policy import VLAPolicy  # noqa: E402
from vla_adapter_core.prompt import load_tokenizer  # noqa: E402
from vla_adapter_core.testing import (  # noqa: E402
    build_tiny_policy,
    default_tokenizer_dir,
    random_observation,
    tiny_statistics,
)

STAGES = ('preprocess', 'vision', 'llm', 'head', 'postprocess', 'total')
CAMERA_NAMES = [f'camera_{index}' for index in range(4)]  # labels only: up to 4 images


def real_config(cameras: int, chunk_size: int = 25, action_dim: int = 14) -> PolicyConfig:
    """The paper's model sizes (ALOHA constants by default)."""
    head = ActionHeadConfig(hidden_dim=896, num_blocks=24, chunk_size=chunk_size,
                            action_dim=action_dim)
    return PolicyConfig(vision=VisionConfig(), llm=LLMConfig(), projector=ProjectorConfig(),
                        action_head=head, camera_names=CAMERA_NAMES[:cameras],
                        proprio_dim=action_dim)


class StageTimer:
    """Wall-clock stage timer that synchronises CUDA before reading the clock."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.times = {}
        self.last = 0.0

    def start(self) -> None:
        self._sync()
        self.last = time.perf_counter()

    def mark(self, stage: str) -> None:
        self._sync()
        now = time.perf_counter()
        self.times[stage] = now - self.last
        self.last = now

    def _sync(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)


@torch.inference_mode()
def timed_predict(policy: VLAPolicy, observation: dict) -> tuple[np.ndarray, dict]:
    """One predict_action_chunk, stage by stage (same computation as VLAAdapterModel.forward)."""
    model = policy.model
    timer = StageTimer(policy.device)
    timer.start()
    batch = policy.prepare_batch([observation])
    timer.mark('preprocess')
    patches = model.projector(model.vision(batch['pixel_values']))  # (1, NP, D)
    timer.mark('vision')
    prompt = model.llm.embed_tokens(batch['input_ids'])  # (1, L, D)
    sequence = assemble_sequence(prompt, batch['attention_mask'], patches,
                                 model.action_queries.weight, model.trailing_embeds())
    hidden = model.llm(sequence.inputs_embeds, sequence.attention_mask, sequence.position_ids)
    blocks = model.config.action_head.num_blocks
    task, adapter = gather_windows(list(hidden[1:blocks + 1]), sequence, model.config.layout,
                                   model.config.upstream_num_task_tokens)
    timer.mark('llm')
    output = model.action_head(task, adapter, model.proprio_token(batch.get('proprio')))
    predicted = model.action_head.predict_actions(output)
    timer.mark('head')
    actions = policy.outputs_to_actions(predicted).actions[0]
    timer.mark('postprocess')
    timer.times['total'] = sum(timer.times.values())
    return actions, timer.times


def measure(policy: VLAPolicy, runs: int, warmup: int, image_shape) -> dict:
    """Per-stage lists of seconds over ``runs`` calls after ``warmup`` calls."""
    observation = random_observation(policy, seed=0, image_shape=image_shape)
    staged, _ = timed_predict(policy, observation)
    reference = policy.predict_action_chunk(observation)
    if not np.allclose(staged, reference, atol=1e-3):
        raise RuntimeError('the staged pipeline does not reproduce predict_action_chunk')
    for _ in range(warmup):
        timed_predict(policy, observation)
    samples = {stage: [] for stage in STAGES}
    for _ in range(runs):
        _, times = timed_predict(policy, observation)
        for stage in STAGES:
            samples[stage].append(times[stage])
    end_to_end = []
    for _ in range(runs):
        start = time.perf_counter()
        policy.predict_action_chunk(observation)
        if policy.device.type == 'cuda':
            torch.cuda.synchronize(policy.device)
        end_to_end.append(time.perf_counter() - start)
    samples['predict_action_chunk'] = end_to_end
    return samples


def report(title: str, samples: dict) -> None:
    """Print median / p90 in milliseconds per stage."""
    print(f'\n{title}')
    print(f'  {"stage":<22}{"median ms":>12}{"p90 ms":>12}')
    for stage, values in samples.items():
        median = statistics.median(values) * 1e3
        p90 = float(np.percentile(values, 90)) * 1e3
        print(f'  {stage:<22}{median:>12.2f}{p90:>12.2f}')


def parameter_counts(cameras: int) -> None:
    """Real-size parameter counts per component, built on the meta device."""
    with torch.device('meta'):
        model = VLAAdapterModel(real_config(cameras))
    print('\nreal-size parameters (meta device, ALOHA head: chunk 25 x 14)')
    total = 0
    for name, module in model.named_children():
        count = sum(p.numel() for p in module.parameters())
        total += count
        print(f'  {name:<22}{count / 1e6:>12.2f} M')
    for index, tower in enumerate(model.vision.towers):
        count = sum(p.numel() for p in tower.parameters())
        print(f'    tower {index} {model.config.vision.timm_model_ids[index]:<40}'
              f'{count / 1e6:>8.2f} M')
    print(f'  {"total":<22}{total / 1e6:>12.2f} M')


def real_policy_on_cuda(cameras: int) -> VLAPolicy:
    """Random-weight policy at the real sizes, built directly on the GPU (bf16)."""
    config = real_config(cameras)
    device = torch.device('cuda')
    with torch.device(device):
        model = VLAAdapterModel(config)
    statistics_ = tiny_statistics(config.action_dim, config.proprio_dim,
                                  config.normalization.unnorm_key)
    return VLAPolicy(model, load_tokenizer(default_tokenizer_dir()), statistics_, device=device,
                     dtype='auto')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--cameras', type=int, default=3, choices=(1, 2, 3, 4))
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--skip_real', '--skip-real',
                        action='store_true', help='skip the CUDA real-size run')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f'torch {torch.__version__}, {args.threads} CPU thread(s), cameras={args.cameras}')
    tiny = build_tiny_policy(camera_names=CAMERA_NAMES[:args.cameras], chunk_size=25, seed=0)
    tiny_config = tiny.config
    print(f'tiny config: LLM {tiny_config.llm.num_hidden_layers} layers x '
          f'{tiny_config.llm.hidden_size}, towers {tiny_config.vision.embed_dims}, head '
          f'{tiny_config.action_head.num_blocks} blocks, chunk {tiny_config.chunk_size} x '
          f'{tiny_config.action_dim}')
    report('tiny policy, CPU, float32, 480x640 input images',
           measure(tiny, args.runs, args.warmup, (480, 640, 3)))
    parameter_counts(args.cameras)
    if torch.cuda.is_available() and not args.skip_real:
        policy = real_policy_on_cuda(args.cameras)
        name = torch.cuda.get_device_name(policy.device)
        report(f'real sizes, {name}, {policy.dtype}, 480x640 input images',
               measure(policy, args.runs, args.warmup, (480, 640, 3)))
    else:
        print('\nno CUDA device (or __skip_real): real-size latency not measured')


if __name__ == '__main__':
    main()
