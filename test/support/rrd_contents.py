"""A Rerun .rrd file read back with Rerun's own reader (rerun.chunk.RrdReader): the oracle."""

from collections import defaultdict
import pathlib

import numpy as np
from rerun.chunk import RrdReader


def rrd_entities(path: pathlib.Path) -> dict[str, dict[str, list]]:
    """{entity path: {column: values}} of the file's first recording, rows sorted by ros_time.

    Columns: 'ros_time' (int nanoseconds), 'timelines' (the timeline names of each chunk), and
    every component column by its Rerun name ('Scalars:scalars', ...), one entry per row.
    Static rows (styles, properties) are kept apart: {'static': {column: values}}.
    """
    columns: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    static: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for chunk in RrdReader(str(path)).store().stream():
        batch = chunk.to_record_batch()
        if chunk.is_static:
            for name in batch.schema.names:
                if name != 'rerun.controls.RowId':
                    static[chunk.entity_path][name].extend(batch.column(name).to_pylist())
            continue
        entity = columns[chunk.entity_path]
        entity['timelines'].extend([tuple(chunk.timeline_names)] * chunk.num_rows)
        for name in batch.schema.names:
            if name == 'rerun.controls.RowId' or name == 'log_time':
                continue
            values = batch.column(name)
            if name == 'ros_time':
                entity[name].extend(values.to_numpy().astype('datetime64[ns]').astype(np.int64)
                                    .tolist())
            else:
                entity[name].extend(values.to_pylist())
    result = {}
    for path_, entity in columns.items():
        if 'ros_time' in entity:
            order = np.argsort(entity['ros_time'], kind='stable')
            entity = {name: [values[i] for i in order] for name, values in entity.items()}
        result[path_] = dict(entity)
    for path_, entity in static.items():
        result.setdefault(path_, {})['static'] = dict(entity)
    return result
