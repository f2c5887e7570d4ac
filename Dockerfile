# Image for docker-compose.yml (server mode). Not built on the development machine, which has
# no Docker engine: treat it as a starting point and build it where Docker runs.
FROM python:3.11-slim
WORKDIR /app
# Scans and images are read by Tesseract (OCR); git sources are cloned and read by git.
RUN apt-get update && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng git \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 UNSTRUCTURED_DISABLE_NOTICE=1
# The CPU build of torch first, so that sentence-transformers does not pull a CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY rag rag
COPY ingestion ingestion
COPY api api
COPY evals evals
COPY corpora corpora
RUN pip install -e .
EXPOSE 8000
CMD ["ragops", "serve", "--host", "0.0.0.0", "--port", "8000"]
