# One image for the web app, the workers and the migrations.
# TORCH_VARIANT selects PyTorch's wheel index: cpu (default) or a CUDA build such as cu130.
FROM python:3.11-slim

ARG TORCH_VARIANT=cpu
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PANDULCE_DATA_DIR=/data

RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 g++ \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
RUN pip install torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/${TORCH_VARIANT}

COPY pyproject.toml README.md alembic.ini ./
COPY training training
COPY pandulce pandulce
COPY worker worker
COPY web web
COPY migrations migrations
RUN pip install -e .

RUN useradd --create-home --uid 1000 pandulce && mkdir -p /data && chown pandulce /data
USER pandulce
VOLUME ["/data"]
EXPOSE 8000
CMD ["pandulce", "serve", "--host", "0.0.0.0", "--port", "8000"]
