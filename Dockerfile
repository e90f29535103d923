# One image for the API replicas and the publisher on the simulated or REST source. The OCX publisher runs on a
# Windows desktop with 32-bit Python instead (see docs/publisher.md), never in a container.
FROM python:3.11-slim
# Qt's offscreen platform (publisher, headless) links against these.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 libfontconfig1 libdbus-1-3 libxkbcommon0 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY kiwoom_cache ./kiwoom_cache
COPY publisher ./publisher
COPY api ./api
COPY stack ./stack
COPY deploy ./deploy
RUN pip install --no-cache-dir ".[publisher,api,rest]"
ENV QT_QPA_PLATFORM=offscreen \
    PYTHONUNBUFFERED=1 \
    KIWOOM_API_HOST=0.0.0.0 \
    KIWOOM_API_PORT=8000
USER nobody
EXPOSE 8000
CMD ["kiwoom-api"]
