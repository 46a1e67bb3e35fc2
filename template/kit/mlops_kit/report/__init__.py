"""Reports people open: the champion's charts, the plots page and the model card.

``python -m mlops_kit.report`` is the DVC stage after ``export``: it scores the
exported champion, draws its charts (``figures``), records the card's facts
(``facts``) and writes the pages (``model_card``, ``page``).
"""
