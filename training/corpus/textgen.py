"""Seeded generator of varied English sentences for the TTS sources (no downloads, word lists in code)."""
from __future__ import annotations

import random

NAMES = ["Anna", "Peter", "Maria", "James", "Olivia", "Thomas", "Sophie", "Daniel", "Laura", "Michael",
         "Emma", "Robert", "Grace", "Henry", "Alice", "Samuel", "Clara", "Victor", "Helen", "Oscar",
         "Rosa", "Martin", "Julia", "Edward", "Nina", "George", "Irene", "Walter", "Lucy", "Arthur"]
PLACES = ["the station", "the old harbour", "the library", "the market square", "the hospital",
          "the village school", "the river bank", "the mountain hut", "the airport", "the city hall",
          "the bakery", "the garden", "the museum", "the farm", "the bridge", "the office", "the kitchen",
          "the forest path", "the beach", "the factory", "the theatre", "the post office", "the church"]
NOUNS = ["letter", "window", "bicycle", "lantern", "basket", "report", "blanket", "ticket", "painting",
         "engine", "compass", "notebook", "kettle", "umbrella", "ladder", "violin", "parcel", "mirror",
         "carpet", "telescope", "bottle", "candle", "wallet", "hammer", "jacket", "map", "radio", "clock",
         "photograph", "newspaper", "suitcase", "blueprint", "recipe", "contract", "key", "horse", "boat"]
ADJECTIVES = ["small", "heavy", "bright", "quiet", "broken", "strange", "ancient", "golden", "narrow",
              "wooden", "careful", "cheerful", "silent", "enormous", "fragile", "curious", "distant",
              "modern", "gentle", "rusty", "crowded", "peaceful", "empty", "famous", "hidden", "warm"]
VERBS_PAST = ["found", "carried", "repaired", "opened", "painted", "forgot", "noticed", "described",
              "delivered", "borrowed", "cleaned", "measured", "ordered", "hid", "lifted", "sold", "bought",
              "studied", "returned", "dropped", "wrapped", "examined", "finished", "offered", "collected"]
ADVERBS = ["slowly", "quickly", "carefully", "suddenly", "quietly", "happily", "reluctantly", "eagerly",
           "patiently", "twice", "early", "late", "again", "gladly", "nervously", "politely"]
TIMES = ["yesterday", "this morning", "last winter", "after dinner", "on Monday", "before sunrise",
         "in the afternoon", "at midnight", "during the storm", "three days ago", "next spring",
         "every Sunday", "in nineteen fifty two", "at half past seven", "after the meeting"]
WEATHER = ["rain", "snow", "wind", "fog", "sunshine", "thunder", "frost", "heat"]
QUESTION_WORDS = ["Why", "When", "Where", "How"]
NUMBERS = ["two", "three", "four", "five", "seven", "nine", "twelve", "fifteen", "twenty", "forty",
           "a hundred", "several", "a few", "many"]

TEMPLATES = [
    "{name} {verb} the {adj} {noun} {time}.",
    "The {adj} {noun} was {adv} {verb} near {place}.",
    "{time}, {name} walked to {place} and {verb} a {noun}.",
    "{qw} did {name} leave the {noun} at {place}?",
    "Nobody expected the {noun} to be so {adj}.",
    "We counted {num} {noun}s in {place} {time}.",
    "{name} said that the {weather} would stop {time}.",
    "If the {weather} continues, we will stay at {place}.",
    "Please bring the {adj} {noun} to {place} {time}.",
    "{name} and {name2} {adv} {verb} {num} old {noun}s.",
    "Is the {noun} really as {adj} as {name} claims?",
    "The {weather} made the road to {place} {adj} and dangerous.",
    "{name} {adv} explained why the {noun} had been {verb}.",
    "After a long day, {name} finally {verb} the {adj} {noun}.",
    "I think {name2} {verb} my {noun} {time}, but I am not sure.",
    "There were {num} people waiting outside {place}.",
    "What a {adj} {noun} that was!",
    "The children {adv} followed {name} along {place}.",
    "{name} wrote a long letter about the {adj} {noun} and the {weather}.",
    "Without a {noun}, nobody could find the way to {place}.",
]


def _fill(template: str, rng: random.Random) -> str:
    name, name2 = rng.sample(NAMES, 2)
    return template.format(
        name=name, name2=name2, place=rng.choice(PLACES), noun=rng.choice(NOUNS), adj=rng.choice(ADJECTIVES),
        verb=rng.choice(VERBS_PAST), adv=rng.choice(ADVERBS), time=rng.choice(TIMES),
        weather=rng.choice(WEATHER), qw=rng.choice(QUESTION_WORDS), num=rng.choice(NUMBERS))


def sentence(seed: int | str, index: int) -> str:
    """The ``index``-th sentence of stream ``seed`` (pure function of its arguments)."""
    rng = random.Random(f"{seed}:{index}")
    return _fill(rng.choice(TEMPLATES), rng)


def utterance_text(seed: int | str, index: int, max_sentences: int = 3) -> str:
    """One to ``max_sentences`` sentences: TTS utterances of ~2-12 s."""
    rng = random.Random(f"utt:{seed}:{index}")
    n = rng.randint(1, max_sentences)
    text = " ".join(sentence(seed, index * 10 + k) for k in range(n))
    return text[0].upper() + text[1:]
