"""Lambda handlers: glue only. Logic lives in `pipelines/`, AWS calls in `functions/shared/`."""
