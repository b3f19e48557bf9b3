"""Request texts for simulated traces: wording that carries a real but noisy signal of difficulty.

`build_request(rng, task_type, visible)` writes one request. The topic, the opener, the number
of constraints, code blocks and urgency words all lean on `visible` (the part of a request's
difficulty its text can show), each with its own noise; few-shot preambles, context sentences
and pleasantries add length that says nothing about difficulty. A text-only router can learn the
lean but never the part of difficulty the text does not carry (see aco_lab/simulate/generate.py).
"""

from __future__ import annotations

import math
import random

# Openers: the clearest cue, and a misleading one now and then (EASY on a hard request).
EASY_OPENERS = (
    "Quick question:",
    "Simple one:",
    "Real quick -",
    "Hey, small thing:",
    "Easy one, I hope:",
    "Just wondering,",
)
NEUTRAL_OPENERS = (
    "",
    "",
    "Hi,",
    "Hello team,",
    "Can you help?",
    "Question:",
    "Hi there!",
    "Good morning,",
)
HARD_OPENERS = (
    "We have a production outage:",
    "Urgent - this is blocking a release:",
    "Critical issue:",
    "This is a hard one.",
    "Escalated from tier-2 support:",
    "High priority, customer-facing:",
)
MISLEADING_OPENER_CHANCE = 0.07

# Scope qualifiers: the same words across task types, so even a small training set learns them.
EASY_SCOPE = (
    "It's a small, self-contained thing.",
    "Nothing fancy needed.",
    "Just the basics.",
    "It should be simple.",
    "Only one case to handle.",
)
HARD_SCOPE = (
    "It spans several legacy systems with no tests.",
    "There are many edge cases.",
    "It involves multiple teams and conflicting requirements.",
    "Everything is distributed across {k} regions.",
    "Nobody has managed this before.",
)
SCOPE_CHANCE = 0.75  # share of requests that state their scope at all

URGENCY = (
    "Customers are affected right now.",
    "We lose about ${m} per hour while this is down.",
    "The regulator expects an answer by {date}.",
    "Please treat this as P1.",
    "Our CEO is asking for an update ASAP.",
)
CONTEXT = (
    "For context, I work at a {size} company.",
    "We use {tech} in production.",
    "I tried searching but found nothing useful.",
    "A colleague, {name}, asked me to forward this.",
    "This came up in a meeting with our team in {city}.",
    "Thanks in advance!",
    "Sorry if this was asked before.",
    "I'm fairly new to this.",
)
GENERIC_CONSTRAINTS = (
    "The deadline is {date}.",
    "The budget is capped at ${m}.",
    "Keep the answer under {k0} words.",
    "Explain each step.",
    "Assume {n} concurrent users.",
    "The data lives in {region}.",
    "Give me two alternatives and a recommendation.",
    "Do not use any paid service.",
    "It has to work offline.",
    "List the assumptions you make.",
)

# (topic, its difficulty 0..1): the topic is chosen near the request's visible difficulty.
TOPICS: dict[str, tuple[tuple[str, float], ...]] = {
    "quick_answer": (
        ("what is the capital of {country}", 0.03),
        ("convert {n} miles to kilometres", 0.08),
        ("give me a synonym for '{word}'", 0.05),
        ("who wrote {book}", 0.08),
        ("what is {k}% of {m}", 0.12),
        ("what year did the {event} happen", 0.15),
        ("is {n} a prime number", 0.22),
        ("what is the time difference between {city} and {city2}", 0.2),
        ("why does ice float on water", 0.25),
        ("solve {k}x + {n} = {m} for x", 0.3),
        ("explain the difference between TCP and UDP in one sentence", 0.3),
        ("summarise the plot of {book} in two sentences", 0.35),
        ("what is the probability of rolling two sixes in a row", 0.35),
        ("what is the derivative of x^{k} * ln(x)", 0.45),
        ("compute the compound interest on EUR {m} at {k}% over {k2} years", 0.45),
        ("explain the Monty Hall problem and why switching wins", 0.55),
        ("estimate how many piano tuners work in {city}", 0.6),
    ),
    "customer_support": (
        ("where is my package (order #{order})", 0.08),
        ("reset my password", 0.1),
        ("update the shipping address on order #{order}", 0.2),
        ("apply a promo code that says it is expired", 0.3),
        ("the app crashes when I upload a receipt", 0.35),
        ("I was charged twice for order #{order}", 0.4),
        ("cancel my subscription and get a prorated refund", 0.45),
        ("downgrade my plan but keep my {n} seats", 0.5),
        ("merge two accounts that share the email {email}", 0.55),
        ("the invoice shows the wrong VAT number for my company in {country}", 0.55),
        ("dispute a charge from {k2} days ago that is past the return window", 0.6),
        ("flight {flight} was cancelled and I must rebook {k} passengers to {city}", 0.6),
        ("the refund for order #{order} went to a closed bank account", 0.65),
        ("change a booking paid with two gift certificates and a card ending {card}", 0.72),
    ),
    "coding": (
        ("reverse a string in {lang}", 0.05),
        ("check whether a number is a palindrome", 0.1),
        ("write a regex that validates email addresses", 0.2),
        ("parse ISO 8601 dates in {lang}", 0.25),
        ("fix an off-by-one error in this loop", 0.25),
        ("add pagination to a REST endpoint in {framework}", 0.4),
        ("write unit tests for an LRU cache", 0.4),
        ("refactor this module to remove a circular import", 0.5),
        ("speed up a slow SQL query that joins {n} tables", 0.55),
        ("implement a sliding-window rate limiter", 0.55),
        ("make the {lang} build reproducible across machines", 0.6),
        ("find the memory leak in our async worker pool", 0.7),
        ("implement consistent hashing for the cache cluster", 0.7),
        ("migrate the ORM models to {framework} 5 without downtime", 0.75),
        ("debug a deadlock between two database transactions under load", 0.8),
        ("fix a race condition in the lock-free queue", 0.85),
        ("port this numerical routine from Fortran to {lang} with bit-exact results", 0.9),
    ),
    "research": (
        ("explain {concept} to a non-expert, with references", 0.3),
        ("find three sources on the history of {concept}", 0.3),
        ("find the original paper that introduced {concept}", 0.3),
        ("compare the pros and cons of {tech} and {tech2}", 0.35),
        ("summarise recent work on {field}", 0.4),
        ("collect statistics on {stat} in {country} since {year}", 0.45),
        ("fact-check the claim that {claim}", 0.5),
        ("estimate the market size for {product} in {country}", 0.6),
        ("list the open problems in {field}", 0.6),
        ("what does the literature say about {field} in low-resource settings", 0.65),
        ("write a literature review on {field} with at least {k} citations", 0.7),
        ("reconcile two studies on {field} that report opposite effects", 0.8),
    ),
    "legal_regulated": (
        ("is this marketing email compliant with CAN-SPAM", 0.3),
        ("summarise the obligations of a data controller under {reg}", 0.4),
        ("does our cookie banner comply with {reg}", 0.45),
        ("what retention period applies to payroll records in {country}", 0.45),
        ("review this NDA clause that caps liability at ${m}", 0.5),
        ("can we store patient records in {region} under {reg}", 0.65),
        ("draft a data processing agreement under {reg}", 0.7),
        ("is this contract's termination clause enforceable in {country}", 0.7),
        ("prepare a breach notification for {n} affected users under {reg}", 0.75),
        ("assess whether our credit-scoring model is high-risk under the EU AI Act", 0.8),
        ("advise on export controls for shipping {product} to {country}", 0.85),
    ),
    "long_horizon": (
        ("organise a three-city trip for {k} people with a budget of EUR {m}", 0.5),
        ("plan and run a week-long clean-up of the {dataset} dataset", 0.6),
        ("research, outline and write a {k}-page report on {field}", 0.6),
        ("write and test a nightly ETL pipeline that loads {dataset} into the warehouse", 0.65),
        ("migrate our monorepo from {tool} to {tool2}", 0.7),
        ("set up CI/CD, staging and production for {product}", 0.7),
        ("build a small web app with login, payments and an admin dashboard", 0.75),
        ("upgrade every service from {lang} 3.8 to 3.12 and fix what breaks", 0.75),
        ("triage and fix the {n} open bugs labelled critical", 0.8),
        ("reproduce the results of the paper on {concept} end to end", 0.9),
    ),
    "data_analysis": (
        ("compute the average order value by month from this CSV", 0.2),
        ("plot weekly active users for the last {n} weeks", 0.25),
        ("write a SQL query for the top {k} customers by lifetime value", 0.25),
        ("find outliers in the {dataset} sensor readings", 0.45),
        ("check whether groups A and B differ significantly (p < 0.05)", 0.45),
        ("analyse an A/B test on conversion with {k} variants", 0.55),
        ("explain why revenue dropped {k}% in {month}", 0.6),
        ("deduplicate customer records across two systems with fuzzy names", 0.65),
        ("build a churn model and explain the top drivers", 0.7),
        ("forecast demand for {product} for the next {k} quarters", 0.7),
        ("reconcile the ledger with the payments export; totals differ by ${m}", 0.75),
        ("estimate the causal effect of the price change on retention", 0.85),
    ),
}

# Task-specific constraints; hard requests carry more of them (and of the generic ones).
CONSTRAINTS: dict[str, tuple[str, ...]] = {
    "quick_answer": ("One line please.", "Show your reasoning.", "Round to {k} decimals."),
    "customer_support": (
        "My account ID is {account}.",
        "I already contacted you {k} times.",
        "I need this fixed before {date}.",
        "Please don't close the ticket yet.",
    ),
    "coding": (
        "Use only the standard library.",
        "It must run on {lang} {version}.",
        "Include tests.",
        "Do not change the public API.",
        "It must handle {n} requests per second.",
        "Memory is limited to {k} MB.",
        "It must stay thread-safe.",
    ),
    "research": (
        "Cite primary sources only.",
        "Cover work since {year}.",
        "Flag any source with a conflict of interest.",
        "Compare at least {k} studies.",
    ),
    "legal_regulated": (
        "We operate in {country} and {country2}.",
        "Personal data of minors is involved.",
        "Our auditor will review this.",
        "Quote the exact article numbers.",
        "We have {n} employees.",
    ),
    "long_horizon": (
        "Report progress after each milestone.",
        "Nothing may break in production.",
        "Coordinate with {name} from the platform team.",
        "Track every cost.",
    ),
    "data_analysis": (
        "The table has {n} rows.",
        "Some values are missing.",
        "Use {tech} for the query.",
        "Explain the statistics in plain words.",
    ),
}

CODE_LINES = (
    "def {ident}(items, limit={k}):",
    "    for i in range(len(items) - 1):",
    "        if items[i] > limit:",
    "            cache[{ident2}] = items[i]",
    "    return sorted(items)[:{k}]",
    "lock.acquire()",
    "result = await pool.submit({ident})",
    "SELECT id, total FROM orders WHERE created_at > '{date}'",
    "    except KeyError:",
    "        pass  # TODO: why does this happen?",
    "class {Ident}Worker(Thread):",
    "    self.queue.put(({ident}, {k}))",
)

FEW_SHOT_HEADER = "Here are examples of the format I want.\n"
FEW_SHOT_EXAMPLES = (
    "Q: What is 2+2?\nA: 4\n",
    "Q: Capital of Italy?\nA: Rome\n",
    "Q: Opposite of hot?\nA: cold\n",
    "Q: Is 7 prime?\nA: yes\n",
    "Q: Translate 'merci'.\nA: thank you\n",
)
QUESTION_WORDS = ("what", "who", "is ", "does", "can ", "why", "how", "where")
STATEMENT_STARTS = ("I ", "the ", "my ", "flight ", "explain why")
IMPERATIVE_FRAMES = ("{t}.", "Can you {t}?", "I need to {t}.", "Please {t}.", "Help me {t}.")

_SLOT_VALUES: dict[str, tuple[str, ...]] = {
    "country": ("France", "Brazil", "Japan", "Kenya", "Germany", "Poland", "Canada", "India"),
    "city": ("Lisbon", "München", "São Paulo", "Kraków", "Osaka", "Nairobi", "Toronto", "Austin"),
    "word": ("happy", "quick", "robust", "fragile", "ambiguous"),
    "book": (
        "Middlemarch",
        "Dune",
        "One Hundred Years of Solitude",
        "Beloved",
        "Kafka on the Shore",
    ),
    "event": ("fall of the Berlin Wall", "first Moon landing", "signing of the Magna Carta"),
    "lang": ("Python", "Rust", "Go", "TypeScript", "Java", "C++"),
    "framework": ("Django", "FastAPI", "Rails", "Spring", "Express"),
    "tech": ("Postgres", "Kafka", "Spark", "DuckDB", "Kubernetes", "Redis", "BigQuery"),
    "concept": (
        "transformers",
        "differential privacy",
        "CRISPR screening",
        "mixture of experts",
        "speculative decoding",
        "causal forests",
    ),
    "field": (
        "LLM routing",
        "federated learning",
        "battery chemistry",
        "urban heat islands",
        "protein folding",
        "carbon pricing",
    ),
    "stat": ("youth unemployment", "EV adoption", "broadband coverage", "hospital wait times"),
    "claim": ("coffee dehydrates you", "we only use 10% of our brains", "bats are blind"),
    "product": ("heat pumps", "e-bikes", "solar inverters", "lab centrifuges", "drones"),
    "reg": ("GDPR", "HIPAA", "CCPA", "LGPD", "PCI DSS", "SOX"),
    "region": ("eu-west-1", "us-east-1", "ap-southeast-2", "an on-premise data centre"),
    "dataset": ("telemetry", "claims", "clickstream", "inventory", "patient-intake"),
    "tool": ("Bazel", "Make", "Gradle", "Lerna"),
    "month": ("March", "July", "October", "December"),
    "name": ("Zoë", "José", "Łukasz", "Søren", "Aiko", "Priya", "Chen Wei"),
    "size": ("five-person", "mid-sized", "Fortune 500", "non-profit"),
    "version": ("3.9", "1.75", "17", "20"),
}
_SLOT_ALIASES = {
    "city2": "city",
    "country2": "country",
    "tech2": "tech",
    "tool2": "tool",
    "ident": "ident",
    "ident2": "ident",
    "Ident": "ident",
}


class _Slots(dict):
    """Fills a template's slots on first use, so only the slots a template names are drawn."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng

    def __missing__(self, key: str) -> str:
        value = _draw_slot(self.rng, key)
        self[key] = value
        return value


def _draw_slot(rng: random.Random, key: str) -> str:
    base = _SLOT_ALIASES.get(key, key)
    if base in _SLOT_VALUES:
        return rng.choice(_SLOT_VALUES[base])
    numbers = {
        "n": (2, 5000),
        "k": (2, 12),
        "k0": (50, 300),
        "k2": (2, 30),
        "m": (100, 250000),
        "order": (100000, 999999),
        "card": (1000, 9999),
        "account": (10000, 99999),
        "year": (1995, 2024),
    }
    if base in numbers:
        return str(rng.randint(*numbers[base]))
    if base == "ident":
        verb = rng.choice(("fetch", "merge", "flush", "score", "parse", "retry"))
        ident = verb + "_" + rng.choice(("batch", "rows", "jobs", "queue", "index"))
        return ident.title().replace("_", "") if key == "Ident" else ident
    if base == "date":
        return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if base == "email":
        return rng.choice(("ana", "li", "omar", "kim")) + "@example.com"
    if base == "flight":
        return f"HAT{rng.randint(1, 299):03d}"
    raise KeyError(key)


def _pick_topic(rng: random.Random, task_type: str, visible: float) -> str:
    """A topic whose difficulty is near `visible` (a Gaussian kernel: near, not exact)."""
    topics = TOPICS[task_type]
    weights = [math.exp(-((d - visible) ** 2) / 0.015) + 0.01 for _, d in topics]
    return rng.choices(topics, weights)[0][0]


def _opener(rng: random.Random, visible: float) -> str:
    if rng.random() < MISLEADING_OPENER_CHANCE:
        pool = EASY_OPENERS if visible > 0.5 else HARD_OPENERS
    elif rng.random() < 1.0 / (1.0 + math.exp(8.0 * (visible - 0.3))):
        pool = EASY_OPENERS
    elif rng.random() < 1.0 / (1.0 + math.exp(-8.0 * (visible - 0.7))):
        pool = HARD_OPENERS
    else:
        pool = NEUTRAL_OPENERS
    return rng.choice(pool)


def _phrase(rng: random.Random, topic: str) -> str:
    """A topic as a sentence: questions end with '?', tasks get a random imperative frame."""
    if topic.startswith(QUESTION_WORDS):
        return topic[0].upper() + topic[1:] + "?"
    if topic.startswith(STATEMENT_STARTS):
        return topic[0].upper() + topic[1:] + "."
    framed = rng.choice(IMPERATIVE_FRAMES).format(t=topic)
    return framed[0].upper() + framed[1:]


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth), for the small means used here."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _code_block(rng: random.Random, visible: float, slots: _Slots) -> str:
    n_lines = 2 + int(rng.random() * (4 + 22 * visible))
    lines = [rng.choice(CODE_LINES).format_map(slots) for _ in range(n_lines)]
    return "```\n" + "\n".join(lines) + "\n```"


def build_request(rng: random.Random, task_type: str, visible: float) -> str:
    """One request text for a task type whose visible difficulty is `visible` (0..1)."""
    slots = _Slots(rng)
    parts: list[str] = []
    if rng.random() < 0.08:  # a few-shot preamble: long, and no sign of difficulty at all
        parts.append(FEW_SHOT_HEADER + "".join(rng.choices(FEW_SHOT_EXAMPLES, k=rng.randint(2, 5))))
    topic = _phrase(rng, _pick_topic(rng, task_type, visible).format_map(slots))
    opener = _opener(rng, visible)
    parts.append(f"{opener} {topic}" if opener else topic)
    if rng.random() < SCOPE_CHANCE:
        easy = rng.random() < 1.0 / (1.0 + math.exp(8.0 * (visible - 0.45)))
        parts.append(rng.choice(EASY_SCOPE if easy else HARD_SCOPE).format_map(slots))
    if rng.random() < 0.35:
        parts.append(rng.choice(CONTEXT).format_map(slots))
    pool = CONSTRAINTS[task_type] + GENERIC_CONSTRAINTS
    n_constraints = min(_poisson(rng, 0.2 + 5.0 * visible), len(pool))
    # Fresh slots per sentence: a number drawn for the topic must not reappear by accident.
    parts.extend(c.format_map(_Slots(rng)) for c in rng.sample(pool, n_constraints))
    code_chance = {"coding": 0.7, "data_analysis": 0.3, "long_horizon": 0.2}.get(task_type, 0.0)
    if rng.random() < code_chance:
        parts.append(_code_block(rng, visible, slots))
    if rng.random() < 0.8 * visible**2:
        parts.append(rng.choice(URGENCY).format_map(slots))
    if rng.random() < 0.03:
        parts.append(rng.choice(("🙏", "Merci !", "Danke.", "ありがとう")))
    return "\n".join(parts) if len(parts) > 2 and rng.random() < 0.5 else " ".join(parts)
