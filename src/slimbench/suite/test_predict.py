"""End-to-end predict per variant on the sample image: letterbox, inference and NMS through ultralytics' predictor.

Timed on the run's stated thread count, not gated: what a user of the checkpoint waits for, including the parts
that pruning does not shrink.
"""

import pytest

from slimbench.measure.timing import synchronize, warm_up


def test_predict(benchmark, slimbench, variant, device, threads):
    if not slimbench.image_paths:
        pytest.skip("no sample image configured (settings.images or --image)")
    image_id = next(iter(slimbench.image_paths))
    img = slimbench.images[image_id]
    model = slimbench.predictor(variant.name, device)
    kwargs = slimbench.predict_kwargs(device)

    def predict():
        model.predict(img, **kwargs)
        synchronize(device)

    warm_up(predict, max(1, slimbench.settings.warmup))  # the first call builds the predictor
    benchmark.group = f"predict-{device}-t{threads}-{slimbench.settings.imgsz}"
    benchmark.extra_info.update(
        variant=variant.name,
        device=device,
        threads=threads,
        image=image_id,
        imgsz=slimbench.settings.imgsz,
        conf=slimbench.settings.conf,
        iou=slimbench.settings.iou,
    )
    benchmark(predict)
