"""`spacetime serve`: an HTTP API in the shape of OpenAI's Videos API and a web page, one process.

    from spacetime.pipeline import SpacetimePipeline
    from spacetime.serve import OutputMarks, create_app, serve

    model = "runs/dit-world/model"
    marks = OutputMarks.resolve(model)  # outputs are watermarked and signed, as `spacetime generate`'s
    serve(create_app(SpacetimePipeline.from_pretrained(model), "outputs", marks=marks), port=7860)

FastAPI and uvicorn come with the `serve` extra: pip install -e '.[serve]' in the checkout.
"""

from spacetime.serve.app import ServerThread, create_app, serve
from spacetime.serve.jobs import OutputMarks
from spacetime.serve.schema import Limits

__all__ = ["Limits", "OutputMarks", "ServerThread", "create_app", "serve"]
