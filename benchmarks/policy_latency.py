"""Latency of VLAPolicy.predict_action_chunk: before / after, batching, compile modes, real sizes.

One run prints:

1. tiny policy, CPU, 1 thread, 3 cameras 480x640, float32: the code before the fast path against
   the current code, calls interleaved (before, after, after, before, ...), medians: a single
   observation, a batch of 4 (mixed prompt lengths, so prompts are padded) and 4 single calls.
   "Before" is a copy of the pre-change ``vla_adapter_core`` taken from git (``git archive
   --before_rev``) into a temporary package ``vla_adapter_core_before``, given the same weights;
   when 'default' is among --compile_modes, the current code compiled ('after, compiled') runs
   in the same interleaved rounds; then the eager batch ratio with torch's default thread count;
2. the per-stage breakdown of the current code (single observation);
3. each compile mode (none / default / max) of the current code: first call (compile) time,
   single and batch-of-4 medians interleaved with eager calls, max |difference| to eager;
4. real sizes (DINOv2-L + SigLIP-so400m, Qwen2.5-0.5B, 24-block dual-arm head, 3 cameras) with
   random weights on the CPU in bf16, 1 and 2 threads, before and after, a few calls;
5. on CUDA when present: the same real-size policy in bf16: the eager stage breakdown and a
   kernel profile (GPU-busy time against wall time, kernel launches per chunk, top kernels),
   then p50 / p99, peak memory, first-call (compile) time, a new instruction of the same
   prompt bucket and the split of a call (processor, model, outputs) for each compile mode, no
   mode started after --cuda_deadline_s; otherwise it
   says that there is no GPU (--cuda_dry_run runs this section's code on the tiny CPU policy);
6. the real-size parameter counts (meta device).

    .venv/bin/python benchmarks/policy_latency.py [--sections tiny,real_cpu,cuda,params]
        [--runs 30] [--real_runs 3] [--real_cameras 3] [--cuda_runs 50]
        [--compile_modes none,default,max]
        [--cuda_deadline_s 900] [--cuda_dry_run] [--skip_real] [--before_rev REV]

The machine's load changes the numbers: check ``uptime`` and compare medians of the same run.
"""

import argparse
import importlib
import io
from pathlib import Path
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vla_adapter_core.config import (  # noqa: E402
    LLMConfig,
    PolicyConfig,
    ProjectorConfig,
    VisionConfig,
)
from vla_adapter_core.heads import ActionHeadConfig  # noqa: E402
from vla_adapter_core.heads.attention import RotaryTables  # noqa: E402
from vla_adapter_core.layout import assemble_sequence, gather_windows  # noqa: E402
from vla_adapter_core.modeling import VLAAdapterModel  # noqa: E402
from vla_adapter_core.policy import VLAPolicy  # noqa: E402
from vla_adapter_core.prompt import load_tokenizer  # noqa: E402
from vla_adapter_core.tiny_policies import (  # noqa: E402
    build_tiny_policy,
    default_tokenizer_dir,
    random_observation,
    tiny_statistics,
)

# The last commit before the inference fast path (issue 12): the "before" code.
BEFORE_REV = 'a7d9724bd7f9d4f886da3881100f18391f9d4faf'
BEFORE_PACKAGE = 'vla_adapter_core_before'
# Module paths only ('vla_adapter_core.x', 'import vla_adapter_core'), not the config format name.
MODULE_PATH = re.compile(r'\bvla_adapter_core(?=\.|\s+import\b)')
STAGES = ('preprocess', 'vision', 'llm', 'head', 'postprocess', 'total')
CAMERA_NAMES = ['cam_high', 'cam_left_wrist', 'cam_right_wrist', 'cam_low']
INSTRUCTIONS = ('pick up the cube', 'open the top drawer and put the bowl inside it',
                'push', 'stack the red block on the blue block next to the plate')
IMAGE_SHAPE = (480, 640, 3)
SECTIONS = ('tiny', 'real_cpu', 'cuda', 'params')


# ----------------------------------------------------------------------------- helpers


def load_before_package(rev: str):
    """Import the ``vla_adapter_core`` of git revision ``rev`` as ``vla_adapter_core_before``.

    Returns ``(package, None)`` or ``(None, reason)``.
    """
    try:
        archive = subprocess.run(['git', '-C', str(ROOT), 'archive', rev, 'vla_adapter_core'],
                                 check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        return None, f'git archive {rev} failed: {error}'
    folder = Path(tempfile.mkdtemp(prefix='policy_latency_before_'))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith('.py'):
                text = tar.extractfile(member).read().decode()
                target = folder / member.name.replace('vla_adapter_core', BEFORE_PACKAGE, 1)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(MODULE_PATH.sub(BEFORE_PACKAGE, text))
    sys.path.insert(0, str(folder))
    return importlib.import_module(BEFORE_PACKAGE), None


def before_policy(package, policy: VLAPolicy):
    """The pre-change code's policy sharing ``policy``'s weights (no copy)."""
    config_module = importlib.import_module(f'{BEFORE_PACKAGE}.config')
    modeling = importlib.import_module(f'{BEFORE_PACKAGE}.modeling')
    policy_module = importlib.import_module(f'{BEFORE_PACKAGE}.policy')
    config = config_module.PolicyConfig.from_dict(policy.config.to_dict())
    with torch.device('meta'):
        model = modeling.VLAAdapterModel(config)
    model.load_state_dict(policy.model.state_dict(), assign=True)
    model.llm.rebuild_rotary_embedding(policy.device)
    return policy_module.VLAPolicy(model, policy.tokenizer, policy.statistics,
                                   device=policy.device, dtype=policy.dtype)


def synchronize(device: torch.device) -> None:
    """Wait for the device (CUDA) so that wall-clock times are complete."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def observations(policy, count: int) -> list:
    """``count`` random observations with different instructions (prompt lengths differ)."""
    return [random_observation(policy, seed=index, image_shape=IMAGE_SHAPE,
                               instruction=INSTRUCTIONS[index % len(INSTRUCTIONS)])
            for index in range(count)]


def interleaved(calls: dict, runs: int, device: torch.device) -> dict:
    """Seconds per call for each named callable, alternating the order every round."""
    samples = {name: [] for name in calls}
    names = list(calls)
    for round_index in range(runs):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            synchronize(device)
            start = time.perf_counter()
            calls[name]()
            synchronize(device)
            samples[name].append(time.perf_counter() - start)
    return samples


def percentiles_ms(values: list) -> tuple:
    """(p50, p90, p99) in milliseconds."""
    ms = np.asarray(values) * 1e3
    return float(np.median(ms)), float(np.percentile(ms, 90)), float(np.percentile(ms, 99))


def print_rows(samples: dict, extra: dict | None = None) -> None:
    """One line per entry: p50 / p90 / p99 ms (and an extra column when given)."""
    print(f'    {"":<34}{"p50 ms":>10}{"p90 ms":>10}{"p99 ms":>10}')
    for name, values in samples.items():
        p50, p90, p99 = percentiles_ms(values)
        note = f'   {extra[name]}' if extra and name in extra else ''
        print(f'    {name:<34}{p50:>10.2f}{p90:>10.2f}{p99:>10.2f}{note}')


def median_ms(values: list) -> float:
    """Median in milliseconds."""
    return statistics.median(values) * 1e3


# ----------------------------------------------------------------------------- stages


class StageTimer:
    """Wall-clock stage timer that synchronises CUDA before reading the clock."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.times = {}
        self.last = 0.0

    def start(self) -> None:
        synchronize(self.device)
        self.last = time.perf_counter()

    def mark(self, stage: str) -> None:
        synchronize(self.device)
        now = time.perf_counter()
        self.times[stage] = now - self.last
        self.last = now


@torch.inference_mode()
def timed_predict(policy: VLAPolicy, observation: dict) -> tuple[np.ndarray, dict]:
    """One eager predict_action_chunk, stage by stage (same computation as the model's)."""
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
    hidden = model.llm(sequence.inputs_embeds)  # positions 0..S-1
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


def report_stages(title: str, policy: VLAPolicy, runs: int) -> None:
    """Median / p90 per stage of the eager single-observation path."""
    observation = observations(policy, 1)[0]
    staged, _ = timed_predict(policy, observation)
    if not np.allclose(staged, policy.predict_action_chunk(observation), atol=1e-3):
        raise RuntimeError('the staged pipeline does not reproduce predict_action_chunk')
    samples = {stage: [] for stage in STAGES}
    for _ in range(runs):
        for stage, seconds in timed_predict(policy, observation)[1].items():
            samples[stage].append(seconds)
    print(f'\n{title}')
    print(f'    {"stage":<34}{"p50 ms":>10}{"p90 ms":>10}{"p99 ms":>10}')
    for stage in STAGES:
        p50, p90, p99 = percentiles_ms(samples[stage])
        print(f'    {stage:<34}{p50:>10.2f}{p90:>10.2f}{p99:>10.2f}')


# ----------------------------------------------------------------------------- tiny, CPU


def tiny_before_after(policy: VLAPolicy, before, runs: int, compiled: VLAPolicy | None) -> None:
    """Section 1: single, batch of 4 and 4 singles, before and after, interleaved.

    ``compiled``: the current code with compile='default' (same weights), already warmed up
    for these shapes, or None.
    """
    batch = observations(policy, 4)
    single = batch[0]
    variants = {'after': policy}
    if compiled is not None:
        variants['after, compiled'] = compiled
    if before is not None:
        variants['before'] = before
        gap = np.abs(before.predict_action_chunk_batch(batch)
                     - policy.predict_action_chunk_batch(batch)).max()
        print(f'    before vs after actions, batch of 4: max |difference| {gap:.2e}')
    calls = {}
    for name, variant in variants.items():
        calls[f'{name}: single'] = (lambda v=variant: v.predict_action_chunk(single))
        calls[f'{name}: batch of 4'] = (lambda v=variant: v.predict_action_chunk_batch(batch))
        calls[f'{name}: 4 single calls'] = (
            lambda v=variant: [v.predict_action_chunk(o) for o in batch])
    interleaved(calls, 3, policy.device)  # warm-up
    samples = interleaved(calls, runs, policy.device)
    print_rows(samples)
    for name in variants:
        ratio = (median_ms(samples[f'{name}: batch of 4'])
                 / median_ms(samples[f'{name}: 4 single calls']))
        print(f'    {name}: batch of 4 / 4 single calls = {ratio:.2f}')
    if before is None:
        return
    for name in variants:
        if name == 'before':
            continue
        speedup = median_ms(samples['before: single']) / median_ms(samples[f'{name}: single'])
        batch_speedup = (median_ms(samples['before: batch of 4'])
                         / median_ms(samples[f'{name}: batch of 4']))
        print(f'    speed-up {name} vs before: single {speedup:.2f}x, batch of 4 '
              f'{batch_speedup:.2f}x')


def warmed_compiled_tiny(eager: VLAPolicy) -> VLAPolicy:
    """The tiny policy with compile='default' (same weights), compiled for the section's shapes."""
    torch._dynamo.reset()
    compiled = VLAPolicy(eager.model, eager.tokenizer, eager.statistics, device='cpu',
                         dtype='float32', compile='default')
    batch = observations(eager, 4)
    start = time.perf_counter()
    compiled.predict([batch[0]])
    compiled.predict(batch)
    for observation in batch[1:]:
        compiled.predict([observation])  # every prompt bucket of the 4 single calls
    print(f"    compile='default' built for these shapes in {time.perf_counter() - start:.1f} s")
    return compiled


def batch_ratio_all_threads(policy: VLAPolicy, runs: int, threads: int) -> None:
    """Batch of 4 against 4 single calls of the eager current code with ``threads`` threads."""
    if threads <= 1:
        return
    batch = observations(policy, 4)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        calls = {'batch of 4': lambda: policy.predict_action_chunk_batch(batch),
                 '4 single calls': lambda: [policy.predict_action_chunk(o) for o in batch]}
        interleaved(calls, 2, policy.device)
        samples = interleaved(calls, runs, policy.device)
    finally:
        torch.set_num_threads(before)
    ratio = median_ms(samples['batch of 4']) / median_ms(samples['4 single calls'])
    print(f'    after, {threads} threads: batch of 4 {median_ms(samples["batch of 4"]):.1f} ms, '
          f'4 single calls {median_ms(samples["4 single calls"]):.1f} ms, ratio {ratio:.2f}')


def tiny_compile_modes(modes: list, runs: int) -> None:
    """Section 3: each compile mode of the current code against eager, interleaved."""
    eager = build_tiny_policy(camera_names=CAMERA_NAMES[:3], chunk_size=25, seed=0)
    batch = observations(eager, 4)
    for mode in modes:
        if mode == 'none':
            continue
        torch._dynamo.reset()
        policy = VLAPolicy(eager.model, eager.tokenizer, eager.statistics, device='cpu',
                           dtype='float32', compile=mode)
        start = time.perf_counter()
        compiled_single = policy.predict([batch[0]]).normalized_actions
        first_single = time.perf_counter() - start
        start = time.perf_counter()
        compiled_batch = policy.predict(batch).normalized_actions
        first_batch = time.perf_counter() - start
        gap = max(np.abs(compiled_single - eager.predict([batch[0]]).normalized_actions).max(),
                  np.abs(compiled_batch - eager.predict(batch).normalized_actions).max())
        calls = {'none: single': lambda: eager.predict_action_chunk(batch[0]),
                 f'{mode}: single': lambda p=policy: p.predict_action_chunk(batch[0]),
                 'none: batch of 4': lambda: eager.predict_action_chunk_batch(batch),
                 f'{mode}: batch of 4': lambda p=policy: p.predict_action_chunk_batch(batch)}
        interleaved(calls, 2, policy.device)
        print(f'\n  compile={mode!r}: first call (compiles) single {first_single:.1f} s, batch '
              f'of 4 {first_batch:.1f} s; max |compiled - eager| (normalised) {gap:.1e}')
        print_rows(interleaved(calls, runs, policy.device))


# ----------------------------------------------------------------------------- real sizes


def real_config(cameras: int = 3, head_kind: str = 'dual_arm') -> PolicyConfig:
    """The paper's model sizes with the ALOHA constants (chunk 25 x 14, proprio 14)."""
    head = ActionHeadConfig(kind=head_kind, hidden_dim=896, num_blocks=24, chunk_size=25,
                            action_dim=14)
    return PolicyConfig(vision=VisionConfig(), llm=LLMConfig(), projector=ProjectorConfig(),
                        action_head=head, camera_names=CAMERA_NAMES[:cameras], proprio_dim=14)


@torch.no_grad()
def random_real_policy(device: str, dtype: torch.dtype, cameras: int = 3) -> VLAPolicy:
    """Real-size policy with random weights, allocated directly in ``dtype`` on ``device``."""
    config = real_config(cameras)
    with torch.device('meta'):
        model = VLAAdapterModel(config)
    model = model.to(dtype=dtype).to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    for name, parameter in model.named_parameters():
        if parameter.dim() >= 2:
            parameter.normal_(0.0, 0.02, generator=generator)
        elif name.endswith('bias'):
            parameter.zero_()
        else:
            parameter.fill_(1.0)  # norm weights, LayerScale, gates
    model.llm.rebuild_rotary_embedding(device)
    for module in model.modules():
        if isinstance(module, RotaryTables):
            module.reset()  # computed tables, not random values
    statistics_ = tiny_statistics(config.action_dim, config.proprio_dim,
                                  config.normalization.unnorm_key)
    return VLAPolicy(model, load_tokenizer(default_tokenizer_dir()), statistics_,
                     device=device, dtype=dtype)


def real_cpu(before_package, runs: int, cameras: int = 3) -> None:
    """Section 4: real sizes on the CPU in bf16, 1 and 2 threads, before and after."""
    policy = random_real_policy('cpu', torch.bfloat16, cameras)
    variants = {'after': policy}
    if before_package is not None:
        variants['before'] = before_policy(before_package, policy)
    observation = observations(policy, 1)[0]
    threads_before = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        calls = {f'{name}: single, {threads} thread(s)':
                 (lambda v=variant: v.predict_action_chunk(observation))
                 for name, variant in variants.items()}
        interleaved(calls, 1, policy.device)
        print_rows(interleaved(calls, runs, policy.device))
    torch.set_num_threads(threads_before)


def cuda_profile(policy: VLAPolicy, observation: dict, calls: int = 5, top: int = 15) -> None:
    """Where eager CUDA time goes: GPU-busy time against wall time, kernel launches, top ops."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
        synchronize(policy.device)
        start = time.perf_counter()
        for _ in range(calls):
            policy.predict_action_chunk(observation)
        synchronize(policy.device)
        wall = (time.perf_counter() - start) / calls
    events = profiler.key_averages()
    launches = sum(event.count for event in events
                   if event.key in ('cudaLaunchKernel', 'cuLaunchKernel', 'cudaLaunchKernelExC'))
    kernel_time = sum(event.self_device_time_total for event in events
                      if event.device_type.name == 'CUDA') / 1e3 / calls
    print(f'\n  eager profile ({calls} calls, profiler on): wall {wall * 1e3:.1f} ms per call, '
          f'GPU kernels busy {kernel_time:.1f} ms per call, {launches // calls} kernel launches '
          'per call')
    print(events.table(sort_by='self_device_time_total', row_limit=top, max_name_column_width=48))


def compiled_first_calls(policy: VLAPolicy, batch: list) -> str:
    """First call (compiles, records graphs), then a new instruction in the same bucket."""
    start = time.perf_counter()
    policy.predict([batch[0]])
    first = time.perf_counter() - start
    for _ in range(3):
        policy.predict([batch[0]])
    builder = policy.processor.prompt_builder
    bucket = policy.inference.bucket_length
    first_bucket = bucket(len(builder.token_ids(batch[0]['instruction'])))
    same_bucket = [o for o in batch[1:]
                   if bucket(len(builder.token_ids(o['instruction']))) == first_bucket]
    note = f'first call {first:.1f} s'
    if same_bucket:
        synchronize(policy.device)
        start = time.perf_counter()
        policy.predict([same_bucket[0]])
        synchronize(policy.device)
        note += f', new instruction same bucket {(time.perf_counter() - start) * 1e3:.0f} ms'
    return note


@torch.inference_mode()
def call_split(policy: VLAPolicy, observation: dict, runs: int) -> str:
    """p50 of the three parts of a call: processor (images, prompt), model, outputs to numpy.

    For a compiled policy the model part is the compiled graph (with its prompt padding);
    the other two parts run outside it on every call.
    """
    samples = {'processor': [], 'model': [], 'outputs': []}
    for _ in range(runs):
        timer = StageTimer(policy.device)
        timer.start()
        batch = policy.prepare_batch([observation], reuse_buffer=True)
        timer.mark('processor')
        predicted = policy.run_model(batch)
        timer.mark('model')
        policy.outputs_to_actions(predicted)
        timer.mark('outputs')
        for part, seconds in timer.times.items():
            samples[part].append(seconds)
    return ', '.join(f'{part} {median_ms(values):.2f}' for part, values in samples.items())


def reset_peak_memory(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)


def memory_gib(device: torch.device, peak: bool = True) -> float:
    """Peak (or current) CUDA memory allocated, GiB; NaN on the CPU."""
    if device.type != 'cuda':
        return float('nan')
    read = torch.cuda.max_memory_allocated if peak else torch.cuda.memory_allocated
    return read(device) / 2**30


def real_cuda(eager: VLAPolicy, modes: list, runs: int, deadline_s: float) -> None:
    """Section 5: real sizes on CUDA, bf16, each compile mode: p50 / p99 and peak memory.

    Modes run in the order given; a mode is skipped once ``deadline_s`` seconds have passed
    since the section started (compiling the real-size model takes minutes). ``eager`` is
    the real-size policy (``--cuda_dry_run`` passes the tiny one on the CPU to check this code).
    """
    started = time.perf_counter()
    device = eager.device
    label = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU (dry run)'
    print(f'\nreal sizes, {label}, torch {torch.__version__}, {eager.dtype}, 3 cameras 480x640, '
          f'dual-arm head (chunk 25 x 14); weights {memory_gib(device, peak=False):.2f} GiB')
    batch = observations(eager, 4)
    observation = batch[0]
    reference = eager.predict([observation]).normalized_actions
    report_stages(f'  stages of the eager path ({label}, {eager.dtype})', eager, runs)
    cuda_profile(eager, observation)
    variants = {f'compile={mode}': mode for mode in modes}
    samples, notes = {}, {}
    for name, variant in variants.items():
        if time.perf_counter() - started > deadline_s:
            print(f'    {name}: skipped, the section passed its {deadline_s:.0f} s deadline')
            continue
        if isinstance(variant, str):
            torch._dynamo.reset()
            variant = VLAPolicy(eager.model, eager.tokenizer, eager.statistics, device=device,
                                dtype=eager.dtype, compile=variant)
        reset_peak_memory(device)
        note = compiled_first_calls(variant, batch)
        actions = variant.predict([observation]).normalized_actions
        timed = interleaved({name: lambda p=variant: p.predict_action_chunk(observation)},
                            runs, device)
        samples[name] = timed[name]
        gap = np.abs(actions - reference).max()
        notes[name] = f'peak {memory_gib(device):.2f} GiB, {note}, |d| {gap:.1e}'
        print_rows({name: samples[name]}, notes)  # each mode as soon as it is measured
        print(f"      p50 ms of a call's parts: {call_split(variant, observation, runs)}")
    print(f'\n  all modes, {label}, {eager.dtype}, single observation')
    print_rows(samples, notes)


def parameter_counts(cameras: int = 3) -> None:
    """Real-size parameter counts per component, built on the meta device."""
    with torch.device('meta'):
        model = VLAAdapterModel(real_config(cameras))
    print('\nreal-size parameters (meta device, dual-arm ALOHA head: chunk 25 x 14)')
    total = 0
    for name, module in model.named_children():
        count = sum(p.numel() for p in module.parameters())
        total += count
        print(f'    {name:<34}{count / 1e6:>10.2f} M')
    for index, tower in enumerate(model.vision.towers):
        count = sum(p.numel() for p in tower.parameters())
        print(f'      tower {index} {model.config.vision.timm_model_ids[index]:<40}'
              f'{count / 1e6:>8.2f} M')
    print(f'    {"total":<34}{total / 1e6:>10.2f} M')


# ----------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=30, help='timed calls per tiny variant')
    parser.add_argument('--real_runs', '--real-runs', type=int, default=3,
                        help='timed calls per real-size CPU variant (each takes seconds)')
    parser.add_argument('--real_cameras', '--real-cameras', default='3',
                        help='comma-separated camera counts of the real-size CPU section (1-4)')
    parser.add_argument('--cuda_runs', '--cuda-runs', type=int, default=50)
    parser.add_argument('--compile_modes', '--compile-modes', default='none,default,max',
                        help='comma-separated subset of none,default,max')
    parser.add_argument('--before_rev', '--before-rev', default=BEFORE_REV,
                        help='git revision of the "before" code')
    parser.add_argument('--skip_real', '--skip-real', action='store_true',
                        help='skip the real-size runs (CPU and CUDA)')
    parser.add_argument('--sections', default=','.join(SECTIONS),
                        help=f'comma-separated subset of {",".join(SECTIONS)}')
    parser.add_argument('--cuda_deadline_s', '--cuda-deadline-s', type=float, default=900.0,
                        help='start no further CUDA compile mode after this many seconds')
    parser.add_argument('--cuda_dry_run', '--cuda-dry-run', action='store_true',
                        help="run the CUDA section's code with the tiny policy on the CPU")
    args = parser.parse_args()
    args.compile_modes = [mode for mode in args.compile_modes.split(',') if mode]
    try:
        args.real_cameras = [int(count) for count in args.real_cameras.split(',') if count]
    except ValueError:
        parser.error(f'--real_cameras {args.real_cameras!r}: expected counts such as 1,3')
    if not args.real_cameras or not all(1 <= c <= len(CAMERA_NAMES) for c in args.real_cameras):
        parser.error(f'--real_cameras {args.real_cameras}: each count must be 1 to '
                     f'{len(CAMERA_NAMES)}')
    args.sections = [section for section in args.sections.split(',') if section]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f'--sections: unknown {unknown}; expected a subset of {list(SECTIONS)}')
    if args.skip_real:
        args.sections = [s for s in args.sections if s not in ('real_cpu', 'cuda')]
    return args


def quiet_autotuning() -> None:
    """Keep inductor's per-kernel autotuning reports ('max' mode) out of the output."""
    from torch._inductor import config as inductor_config
    inductor_config.autotune_num_choices_displayed = 0
    inductor_config.max_autotune_report_choices_stats = False


def main() -> None:
    args = parse_args()
    args.all_threads = torch.get_num_threads()  # torch's default for this machine
    torch.set_num_threads(1)
    quiet_autotuning()
    print(f'torch {torch.__version__}; CPU sections use 1 thread unless stated; sections '
          f'{",".join(args.sections)}')
    before_package, reason = load_before_package(args.before_rev)
    print(f'"before" = vla_adapter_core at {args.before_rev[:12]} loaded from git'
          if before_package else f'"before" not measured: {reason}')
    if 'tiny' in args.sections:
        tiny_sections(before_package, args)
    if 'real_cpu' in args.sections:
        for cameras in args.real_cameras:
            print(f'\nreal sizes, random weights, CPU, bf16, {cameras} camera(s), dual-arm head')
            real_cpu(before_package, args.real_runs, cameras)
    if 'cuda' in args.sections:
        if args.cuda_dry_run:
            tiny = build_tiny_policy(camera_names=CAMERA_NAMES[:3], chunk_size=25, seed=0)
            real_cuda(tiny, args.compile_modes, args.cuda_runs, args.cuda_deadline_s)
        elif torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
            policy = random_real_policy('cuda', torch.bfloat16)
            real_cuda(policy, args.compile_modes, args.cuda_runs, args.cuda_deadline_s)
        else:
            print('\nno CUDA device on this machine: real-size GPU latency not measured')
    if not {'real_cpu', 'cuda'} & set(args.sections):
        print('\nreal-size latency not measured (--skip_real or --sections)')
    if 'params' in args.sections:
        parameter_counts()


def tiny_sections(before_package, args: argparse.Namespace) -> None:
    """Sections 1-3: the tiny policy on the CPU, before / after, stages and compile modes."""
    tiny = build_tiny_policy(camera_names=CAMERA_NAMES[:3], chunk_size=25, seed=0)
    config = tiny.config
    print(f'\ntiny policy, CPU, float32, 1 thread, 3 cameras 480x640 (LLM '
          f'{config.llm.num_hidden_layers} x {config.llm.hidden_size}, head '
          f'{config.action_head.num_blocks} blocks, chunk {config.chunk_size} x '
          f'{config.action_dim}); calls interleaved')
    before = before_policy(before_package, tiny) if before_package else None
    compiled = warmed_compiled_tiny(tiny) if 'default' in args.compile_modes else None
    tiny_before_after(tiny, before, args.runs, compiled)
    batch_ratio_all_threads(tiny, args.runs, args.all_threads)
    report_stages('tiny policy, current code, stages (single observation)', tiny, args.runs)
    print('\ntiny policy, CPU, compile modes (interleaved with eager calls)')
    tiny_compile_modes(args.compile_modes, args.runs)


if __name__ == '__main__':
    main()
