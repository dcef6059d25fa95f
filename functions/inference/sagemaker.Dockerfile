# SageMaker serving image: the function image's base and pins (so a model loads under the
# scikit-learn that wrote it), started the way SageMaker starts containers (`docker run IMAGE serve`).
FROM public.ecr.aws/lambda/python:3.11

COPY functions/requirements.txt ${LAMBDA_TASK_ROOT}/requirements-lambda.txt
RUN pip install --no-cache-dir -r ${LAMBDA_TASK_ROOT}/requirements-lambda.txt

COPY pipelines/ ${LAMBDA_TASK_ROOT}/pipelines/
COPY functions/ ${LAMBDA_TASK_ROOT}/functions/

WORKDIR ${LAMBDA_TASK_ROOT}
EXPOSE 8080
ENTRYPOINT ["python3", "-m", "functions.inference.sagemaker_server"]
