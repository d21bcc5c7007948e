# Image of one ops-center node. The compose file runs two of them behind PostgreSQL and Redis.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ops_center ops_center
COPY projections projections
COPY streams streams
COPY web web
RUN pip install --no-cache-dir .
RUN useradd --system ops && chown ops /app
USER ops
EXPOSE 8080
# Ready, not just alive: started, the store answering, projections caught up (/readyz).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/readyz').status == 200 else 1)"
CMD ["ops-center", "serve", "--host", "0.0.0.0", "--port", "8080"]
