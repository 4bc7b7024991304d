"""engines: where a run's photos are processed, each behind one interface, the compute object
(compute.FacePipeline) doing the work itself:

- `local.LocalEngine`: this process, threads (the default);
- `ray.RayEngine`: the actors of a Ray cluster (`--engine ray`).

    engine = LocalEngine(settings)       # or RayEngine(settings)
    engine.process(todo, store, run_id, key, monitor, summary)   # results stored as they come
    engine.close()

pipeline.run picks one; an engine never imports the pipeline.
"""
