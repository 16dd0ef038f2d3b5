"""Where the cube's position gets lost inside a demo policy (issue 19): linear probes.

At the start observation of training seeds (``--train``) and held-out seeds (``--test``), both
written by ``benchmarks/demo_policy_diagnosis.py render``, the policy's intermediate features
are captured with forward hooks: the vision towers' output, the projector's output and the
action head's inputs (the LLM's task and action-query states it attends to). A ridge regression
(its strength chosen by leave-one-out on the training seeds) maps each to the cube's (x, y);
printed: the held-out RMS error in cm beside the constant mean-cube guess. A small error where
the policy's chunk still ignores the cube puts the loss of information after that point.

    .venv/bin/python benchmarks/demo_policy_probe.py --train runs19/diagnosis/start_train.npz
        --test runs19/diagnosis/start.npz --checkpoint RUN/final [--checkpoint ...]
"""

import argparse
from pathlib import Path
import sys

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import demo_policy_diagnosis as diagnosis  # noqa: E402  (a sibling script)

RIDGE_STRENGTHS = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4)


def captured_features(policy, start: dict) -> dict[str, np.ndarray]:
    """Feature name -> (S, F) flattened features of each seed's start observation."""
    captured: dict[str, list[np.ndarray]] = {}

    def keep(name: str, from_inputs: bool):
        def hook(module, inputs, output):
            tensors = inputs[:2] if from_inputs else (output,)
            flat = torch.cat([tensor.detach().float().flatten(1) for tensor in tensors], dim=1)
            captured.setdefault(name, []).append(flat.numpy())  # (B, F)
        return hook

    model = policy.model
    handles = [model.vision.register_forward_hook(keep('vision towers', False)),
               model.projector.register_forward_hook(keep('projector', False)),
               model.action_head.register_forward_hook(keep('action head inputs', True))]
    images = {camera: start[f'image_{camera}'] for camera in diagnosis.CAMERAS}
    try:
        diagnosis.predict_observations(policy, images, start['proprio'])
    finally:
        for handle in handles:
            handle.remove()
    return {name: np.concatenate(parts) for name, parts in captured.items()}


def ridge_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                  strength: float) -> np.ndarray:
    """Kernel (dual) ridge on centred targets: (N, F), (N, 2), (M, F) -> (M, 2)."""
    kernel = train_x @ train_x.T  # (N, N)
    weights = np.linalg.solve(kernel + strength * np.eye(len(kernel)),
                              train_y - train_y.mean(axis=0))  # (N, 2)
    return (test_x @ train_x.T) @ weights + train_y.mean(axis=0)


def probe_error_cm(train_x, train_y, test_x, test_y) -> tuple[float, float]:
    """Held-out RMS error (cm) of the ridge leave-one-out picks, and its strength."""
    mean, scale = train_x.mean(axis=0), train_x.std(axis=0) + 1e-3
    train_x, test_x = (train_x - mean) / scale, (test_x - mean) / scale
    seeds = np.arange(len(train_x))

    def leave_one_out(strength: float) -> float:
        return float(np.mean([np.sum((ridge_predict(train_x[seeds != i], train_y[seeds != i],
                                                    train_x[i:i + 1], strength)
                                      - train_y[i]) ** 2) for i in seeds]))

    strength = min(RIDGE_STRENGTHS, key=leave_one_out)
    error = ridge_predict(train_x, train_y, test_x, strength) - test_y  # (M, 2)
    return float(np.sqrt((error ** 2).sum(axis=1).mean())), strength


def main() -> None:
    """Parse the options, probe each checkpoint, print one line per feature."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--train', type=Path, required=True, help='render output, fit seeds')
    parser.add_argument('--test', type=Path, required=True, help='render output, held out')
    parser.add_argument('--checkpoint', action='append', required=True)
    args = parser.parse_args()
    train, test = dict(np.load(args.train)), dict(np.load(args.test))
    train_y, test_y = 100 * train['cube'][:, :2], 100 * test['cube'][:, :2]  # cm
    constant = np.sqrt(((test_y - train_y.mean(axis=0)) ** 2).sum(axis=1).mean())
    print(f'constant mean cube: held-out RMS {constant:.2f} cm')
    for checkpoint in args.checkpoint:
        policy = diagnosis.load_policy(checkpoint)
        train_features = captured_features(policy, train)
        test_features = captured_features(policy, test)
        for name, features in train_features.items():
            error, strength = probe_error_cm(features, train_y, test_features[name], test_y)
            print(f'{checkpoint}: {name} ({features.shape[1]} values): held-out RMS '
                  f'{error:.2f} cm (ridge {strength:g})')


if __name__ == '__main__':
    main()
