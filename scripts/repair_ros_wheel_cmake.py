"""
Point the ROS 2 wheels' CMake exports at this environment's Python and numpy headers.

The PyPI ROS 2 wheels were built on a host whose Python lived in /opt/python/cp311-cp311; their
`share/<pkg>/cmake/*__rosidl_generator_pyExport.cmake` files keep that path, so building any
interface package against them fails. This rewrites the two include directories to the venv's
own, and is idempotent.

Usage: python scripts/repair_ros_wheel_cmake.py <venv prefix>
"""

import pathlib
import re
import sys
import sysconfig

import numpy

BUILD_HOST_PYTHON_INCLUDE = re.compile(r'/opt/python/cp3\d+-cp3\d+/include/python3\.\d+')
BUILD_HOST_NUMPY_INCLUDE = re.compile(
    r'/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/_core/include')


def repair_file(path: pathlib.Path, python_include: str, numpy_include: str) -> bool:
    """Rewrite one export file; return True when it changed."""
    text = path.read_text()
    fixed = BUILD_HOST_NUMPY_INCLUDE.sub(numpy_include, text)
    fixed = BUILD_HOST_PYTHON_INCLUDE.sub(python_include, fixed)
    if fixed == text:
        return False
    path.write_text(fixed)
    return True


def main(argv: list[str]) -> int:
    """Repair every export file under <prefix>/share."""
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    share = pathlib.Path(argv[1]) / 'share'
    if not share.is_dir():
        print(f'error: {share} is not a directory (is the venv installed?)', file=sys.stderr)
        return 2
    python_include = sysconfig.get_paths()['include']
    numpy_include = numpy.get_include()
    changed = [
        path for path in sorted(share.glob('*/cmake/*__rosidl_generator_pyExport.cmake'))
        if repair_file(path, python_include, numpy_include)
    ]
    print(f'repaired {len(changed)} ROS 2 wheel cmake export file(s) under {share}')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
