"""Writes the shipped task data, reproducibly: ``python -m harness.tasks.generate [--check]``.

Three datasets, each split train 200 / dev 100 / test 100 (JSONL, one object a line, keys
sorted) under ``harness/tasks/data/<task>/``, plus ``data/MANIFEST.json`` (every file's rows
and sha256). Everything comes from ``random.Random(seed)`` with the fixed seeds in ``SEEDS``
and the tables below, in pure stdlib Python, so the files are the same on every machine.

* ``math``: grade-school word problems (GSM8K-like: questions ~35-70 words, worked
  rationales of ~40-85 words, 2-8 calculation steps, ending "The answer is N."). 26 templates in 8 skill
  families; the numbers are drawn per row, every answer is a positive integer, and each
  rationale's arithmetic is re-checked before it is written.
* ``classify``: support-ticket messages (8-40 words) with one of 10 intent labels (listed
  with descriptions in ``classify/labels.json``), 10% of each split per label. About 30% are
  "hard": phrased indirectly, or naming a confusable label's vocabulary.
* ``multihop``: two-hop questions over ``multihop/corpus.jsonl``, ~300 short documents about an
  invented world (countries, cities, rivers, mountains, companies, products, people), with
  similarly named distractors. 11 question templates; every kept question's hop-1 document
  is in the top 3 of ``harness.tasks.search`` for the question text, and its hop-2 document
  in the top 3 for the bridge entity's name; the hop-2 document never names the hop-1 entity,
  so one search with the question alone rarely finds it.

Rows are split by proportional stratification (template, or label and difficulty), and each
split is shuffled so that its first 20 rows (the "quick" profile) hold every kind.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import operator
import random
import re
import string
import sys

from .base import DATA_DIR
from .search import Corpus

SIZES = {"train": 200, "dev": 100, "test": 100}
TOTAL = sum(SIZES.values())
SEEDS = {"math": 1101, "classify": 2202, "multihop": 3303}
QUICK_N = 20  # the first rows of every split hold every skill / label / template


def nwords(text: str) -> int:
    return len(text.split())


def split_rows(rng: random.Random, task: str, rows: list[dict], strat, cover) -> dict[str, list[dict]]:
    """Proportionally stratified train/dev/test (by `strat`), each split's first rows covering `cover`."""
    groups: dict = {}
    for r in rows:
        groups.setdefault(strat(r), []).append(r)
    keyed = []
    for key in sorted(groups):
        g = groups[key]
        rng.shuffle(g)
        keyed += [((i + 0.5) / len(g), rng.random(), r) for i, r in enumerate(g)]
    order = [r for *_, r in sorted(keyed, key=lambda t: t[:2])]
    out, start = {}, 0
    for split, n in SIZES.items():
        part = order[start:start + n]
        start += n
        kinds = {cover(r) for r in part}
        assert len(kinds) <= QUICK_N
        while True:
            rng.shuffle(part)
            if {cover(r) for r in part[:QUICK_N]} == kinds:
                break
        out[split] = [{"id": f"{task}-{split}-{i:04d}", **r} for i, r in enumerate(part)]
    return out


# ================================================================================== math

NAMES = [(n, "f") for n in "Maya Aisha Sofia Priya Elena Grace Hana Lucia Nora Zoe Fatima Ines Chloe Amara Yuki "
         "Olivia Mei Rosa Leila Tamsin".split()] + \
        [(n, "m") for n in "Omar Diego Liam Kenji Mateo Samuel Arjun Felix Tariq Jonah Luca Ravi Hugo Kwame "
         "Ethan Marco Nikhil Theo Malik Pablo".split()]
PRONOUNS = {"f": ("she", "her", "her", "sister"), "m": ("he", "him", "his", "brother")}
FRAC = {2: "half", 3: "one third", 4: "one quarter", 5: "one fifth", 6: "one sixth"}
FRACTIONS = [(1, 2), (2, 3), (3, 4), (3, 5), (5, 6), (2, 5), (3, 8), (5, 8), (1, 4), (1, 3)]
RATIOS = [(1, 2), (1, 3), (2, 3), (2, 5), (3, 4), (3, 5), (1, 4), (3, 7), (4, 5), (2, 7), (5, 7), (4, 9)]


def T(skill, question, nums, steps, pick=None, let="", check=""):
    """One math template: `nums` "var lo-hi[/step]" or "var a|b|c"; `steps` lines "var = expr : text"."""
    return {"skill": skill, "question": " ".join(question.split()), "nums": nums, "pick": pick or {},
            "let": [s.split("=") for s in let.split(";") if s.strip()],
            "check": [c for c in check.split(";") if c.strip()],
            "steps": [(ln.split("=", 1)[0].strip(), *[p.strip() for p in ln.split("=", 1)[1].split(":", 1)])
                      for ln in steps.strip().splitlines()]}


EVENTS = ["a school project", "a birthday party", "a family picnic", "the new school year", "a camping trip"]
MATH = [
    T("shopping", """{name} is getting ready for {event} and stops at the {store} on the way home. {He} buys {a}
      {item1} that cost ${p1} each and {b} {item2} that cost ${p2} each. {He} pays the cashier with a ${bill}
      bill. How much change, in dollars, should {name} get back?""",
      "a 2-8; p1 3-15; b 2-9; p2 2-9; bill 50|100", """
      c1 = a * p1 : The {item1} cost {calc} dollars.
      c2 = b * p2 : The {item2} cost {calc} dollars.
      c3 = c1 + c2 : Altogether {he} spends {calc} dollars.
      c4 = bill - c3 : {He} paid with ${bill}, so {his} change is {calc} dollars.""",
      {"event": EVENTS, "store,item1,item2": [
          ("craft store", "jars of paint", "brushes"), ("hardware store", "boxes of nails", "rolls of tape"),
          ("stationery shop", "notebooks", "packs of pens"), ("farmers market", "baskets of plums", "loaves of bread"),
          ("garden center", "bags of soil", "flower pots"), ("toy store", "puzzles", "packs of cards")]},
      check="c3 < bill"),
    T("shopping", """{name} runs a small stall at the {place} every month. This time {he} buys {n} packs of {item}
      for ${P} per pack, and every pack holds {k} {item}. {He} plans to sell each of the {item} for ${s}. If {he}
      sells every single one of them, how much profit does {he} make?""",
      "n 3-12; k 4-12; P 5-30; s 2-6", """
      c1 = n * k : {He} has {calc} {item} to sell.
      c2 = c1 * s : Selling all of them at ${s} each brings in {calc} dollars.
      c3 = n * P : The packs cost {him} {calc} dollars.
      c4 = c2 - c3 : {His} profit is {calc} dollars.""",
      {"item": ["bracelets", "candles", "keychains", "cupcakes", "postcards", "bookmarks"],
       "place": ["weekend market", "school fair", "town festival", "flea market"]}, check="c4 > 0"),
    T("shopping", """{name} teaches at {school} and is ordering supplies for the new term. Each of the {N} students
      in {his} classes needs {k} {item}. The {item} are only sold in boxes of {m}, and each box costs ${P}. How much
      will {name} spend, in dollars, to buy exactly enough {item} for every student?""",
      "N 12-40; k 2-6; m 4|5|6|8|10|12; P 3-15", """
      c1 = N * k : Each of the {N} students needs {k} {item}, so the class needs {calc} {item} in total.
      c2 = c1 / m : Since one box holds {m} {item}, {name} has to buy {calc} boxes.
      c3 = c2 * P : At ${P} per box, the total cost is {calc} dollars.""",
      {"item": ["glue sticks", "folders", "erasers", "rulers", "markers", "notebooks"],
       "school": ["Maple Hill School", "Riverside Middle School", "Oakwood Academy", "Cedar Park School"]}),
    T("rates", """{name} is driving to visit {his} {relative} in another town. For the first part of the trip {he}
      drives on the highway at {v} miles per hour for {h1} hours. After a short break, {he} takes quiet country
      roads at {w} miles per hour for {h2} hours. How many miles does {name} drive in total?""",
      "v 50-70/5; h1 2-5; w 25-45/5; h2 1-4", """
      c1 = v * h1 : Distance is speed times time, so on the highway {he} covers {calc} miles.
      c2 = w * h2 : On the country roads {he} covers another {calc} miles.
      c3 = c1 + c2 : Adding the two parts of the trip, {he} drives {calc} miles in total.""",
      {"relative": ["grandmother", "aunt", "uncle", "cousin", "old college friend"]}),
    T("rates", """A machine at a {factory} makes {r} {item} every minute. During each shift it runs for {t} minutes,
      and the factory operates {s} shifts a day. The manager wants to know the output for a full week of {d}
      working days. How many {item} does the machine make in that week?""",
      "r 3-15; t 90-240/30; s 2|3; d 4-6", """
      c1 = r * t : In one shift the machine makes {calc} {item}.
      c2 = c1 * s : With {s} shifts, it makes {calc} {item} each day.
      c3 = c2 * d : Over {d} working days it makes {calc} {item}.""",
      {"factory,item": [("toy factory", "plastic blocks"), ("bottling plant", "bottles"), ("bakery", "bread rolls"),
                        ("print shop", "flyers"), ("button factory", "buttons")]}),
    T("rates", """A {tank} holds {C} liters of water when it is full. {name} opens a hose that pours in {r} liters
      per minute, but a small crack at the bottom lets {l} liters leak out every minute. The {tank} starts
      completely empty. How many minutes will it take to fill it to the top?""",
      "r 6-20; l 1-5; k 8-40", """
      c1 = r - l : {r} liters flow in and {l} leak out each minute, so the {tank} gains {calc} liters every minute.
      c2 = C / c1 : Filling all {C} liters at that rate takes {calc} minutes, and then the {tank} is full.""",
      {"tank": ["garden pond", "rain barrel", "fish tank", "water trough", "paddling pool"]}, let="C = (r - l) * k"),
    T("rates", """{name} works at a {job}. {He} earns ${w} an hour and works {h} hours each weekday, Monday through
      Friday. On Saturdays {he} works {h2} hours, and for weekend hours the owner pays an extra ${b} an hour on top
      of the usual rate. How much does {name} earn in one week?""",
      "w 10-22; h 3-8; h2 2-6; b 2-6", """
      c1 = 5 * h : On the five weekdays {he} works {calc} hours.
      c2 = c1 * w : Those hours pay {calc} dollars.
      c3 = w + b : On Saturday {his} rate is {calc} dollars an hour.
      c4 = h2 * c3 : So Saturday pays {calc} dollars.
      c5 = c2 + c4 : In total {he} earns {calc} dollars in the week.""",
      {"job": ["bike repair shop", "coffee shop", "bookstore", "garden center", "animal shelter", "bakery"]}),
    T("percent", """A {store} is having a big sale, and everything in the shop is {pct}% off. {name} wants to buy {n}
      {item} that normally cost ${P} each. {He} has already checked that the discount applies to every one of
      them. How much will {name} pay for the {item} during the sale?""",
      "pct 10|20|25|30|40|50; P 20-200/10; n 2-6", """
      c1 = P * pct / 100 : The discount on each one is {calc} dollars.
      c2 = P - c1 : So each one now costs {calc} dollars.
      c3 = c2 * n : For {n} of them {he} pays {calc} dollars.""",
      {"store,item": [("sports store", "pairs of running shoes"), ("bookstore", "cookbooks"),
                      ("furniture shop", "desk lamps"), ("toy store", "board games"),
                      ("music shop", "guitar stands")]}),
    T("percent", """There are {N} students in the {grade} at {school}. Exactly {pct}% of these students are in the
      school band, and the rest are not. Of the students in the band, {q}% play a brass instrument. How many
      students in the band do not play a brass instrument?""",
      "N 40-300/20; pct 10|20|25|40|50|60|75; q 20|25|40|50|60|75", """
      c1 = N * pct / 100 : {pct}% of {N} students are in the band, which is {calc} students.
      c2 = c1 * q / 100 : Of them, {q}% play brass: {calc} students.
      c3 = c1 - c2 : So {calc} band members do not play a brass instrument.""",
      {"grade": ["sixth grade", "seventh grade", "eighth grade"],
       "school": ["Maple Hill School", "Riverside Middle School", "Oakwood Academy", "Lincoln School"]}),
    T("percent", """{name} earns ${S} a month at {his} job as a {role}. This year {he} gets a raise of {pct}%. After
      the raise, {he} decides to put {q}% of {his} new monthly salary into a savings account and to spend the rest.
      How much money does {he} have left to spend each month?""",
      "S 1200-4000/100; pct 5|10|15|20; q 10|20|25|30|40", """
      c1 = S * pct / 100 : The raise is {calc} dollars.
      c2 = S + c1 : {His} new salary is {calc} dollars a month.
      c3 = c2 * q / 100 : {He} saves {calc} dollars of it.
      c4 = c2 - c3 : That leaves {calc} dollars to spend each month.""",
      {"role": ["nurse", "mechanic", "librarian", "web designer", "chef", "bus driver"]}),
    T("time", """{name} is reading a long fantasy series over the summer holidays. On each weekday {he} reads {p}
      pages before bed, and on Saturday and Sunday {he} reads {q} pages each day because {he} has more free time.
      How many pages does {name} read in {w} weeks?""",
      "p 10-40/5; q 30-90/5; w 2-6", """
      c1 = 5 * p : On the five weekdays {he} reads {calc} pages.
      c2 = 2 * q : On the weekend {he} reads {calc} pages.
      c3 = c1 + c2 : So {he} reads {calc} pages each week.
      c4 = c3 * w : In {w} weeks {he} reads {calc} pages.""", {}),
    T("time", """{name} is preparing for a {event}. {He} practices the {instrument} for {m} minutes a day on {d}
      days each week, plus one long session of {L} minutes every Sunday. {He} keeps this schedule for {w} weeks.
      How many hours does {name} practice in total?""",
      "m 15-60/15; d 2-6; L 30-120/30; w 2-8", """
      c1 = m * d : The daily sessions add up to {calc} minutes a week.
      c2 = c1 + L : With the Sunday session, {he} practices {calc} minutes a week.
      c3 = c2 * w : Over {w} weeks that is {calc} minutes.
      c4 = c3 / 60 : An hour has 60 minutes, so {he} practices {calc} hours.""",
      {"instrument": ["piano", "violin", "drums", "flute", "guitar", "cello"],
       "event": ["school recital", "music exam", "concert", "talent show"]}),
    T("time", """The {club} is holding a movie marathon on {day}. They will show {n} films that are each {m}
      minutes long, one after another. Between every two films there is a break of {b} minutes for snacks, but
      there is no break before the first film or after the last. How many minutes does the marathon last?""",
      "n 3-7; m 85-130/5; b 10-25/5", """
      c1 = n * m : The {n} films last {calc} minutes in total.
      c2 = n - 1 : There is a break between each pair of films, so there are {calc} breaks.
      c3 = c2 * b : The breaks take {calc} minutes.
      c4 = c1 + c3 : The marathon lasts {calc} minutes.""",
      {"club": ["film club", "drama society", "neighborhood library", "school science club"],
       "day": ["Friday night", "Saturday", "the last day of school", "New Year's Eve"]}),
    T("fractions", """{name} has a collection of {N} {item}. {He} gives {a:frac} of them to {his} friend {name2}.
      Then {he} gives {b:frac} of the {item} that are left to {his} younger {sib3}, {name3}. How many {item} does
      {name} keep for {him}self?""",
      "a 2|3|4|5; b 2|3|4|5; N 24-240/6", """
      c1 = N / a : {He} gives {name2} {calc} {item}.
      c2 = N - c1 : That leaves {calc} {item}.
      c3 = c2 / b : {name3} gets {calc} {item}.
      c4 = c2 - c3 : So {name} keeps {calc} {item}.""",
      {"item": ["marbles", "stickers", "trading cards", "seashells", "stamps", "comic books"]}),
    T("fractions", """For {event}, {name} orders {n} large pizzas, and each pizza is cut into {s} slices. By the end
      of the evening, the guests have eaten {k}/{m} of all the slices. The leftovers go into the fridge for lunch
      the next day. How many slices are left over?""",
      "n 3-9; s 6|8|10|12", """
      c1 = n * s : There are {calc} slices in total.
      c2 = c1 * k / m : The guests eat {k}/{m} of them, which is {calc} slices.
      c3 = c1 - c2 : So {calc} slices are left over.""",
      {"event": EVENTS, "k,m": FRACTIONS}),
    T("fractions", """A farmer named {name} owns {N} acres of land. This spring {he} plants corn on {k}/{m} of the
      land. {He} plants wheat on {b:frac} of the remaining land, and the rest is left as pasture for {his} {animals}.
      How many acres are left as pasture?""",
      "N 60-600/10; b 2|3|4", """
      c1 = N * k / m : Corn takes {k}/{m} of the land, which is {calc} acres.
      c2 = N - c1 : That leaves {calc} acres.
      c3 = c2 / b : Wheat takes {calc} acres.
      c4 = c2 - c3 : The pasture is {calc} acres.""",
      {"animals": ["sheep", "cows", "goats", "horses"], "k,m": FRACTIONS}),
    T("ages", """{name} is {a} years older than {his} cousin {name2}. {name2} is {k} times as old as {his2} little
      {sib3}, {name3}, who is {z} years old. The three of them are planning a joint birthday party this year. What
      is the sum of their three ages?""",
      "z 2-9; k 2|3|4; a 2-12", """
      c1 = z * k : {name2} is {k} times as old as {name3}, so {name2} is {calc} years old.
      c2 = c1 + a : {name} is {a} years older than {name2}, so {name} is {calc} years old.
      c3 = z + c1 + c2 : The sum of their ages is {calc}.""", {}),
    T("ages", """{name2} is {y} years old. {His2} older cousin, {name}, is {k} times as old as {name2}. The family is
      planning a big trip together for {n} years from now. What will the sum of {name}'s age and {name2}'s age be at
      that time?""",
      "y 3-9; k 2|3|4; n 2-10", """
      c1 = y * k : {name} is {calc} years old now.
      c2 = c1 + n : In {n} years {name} will be {calc} years old.
      c3 = y + n : {name2} will be {calc} years old.
      c4 = c2 + c3 : The sum of their ages will be {calc}.""", {}),
    T("ages", """Five years ago, {name} was {a} years old. {His} {sib2} {name2} is {b} years younger than {name} is
      today, and their cousin {name3} is half as old as {name2}. How old will {name3} be in {t} years?""",
      "a 10-40; b 2-9; t 1-10", """
      c1 = a + 5 : Five years have passed since {name} was {a}, so today {name} is {calc} years old.
      c2 = c1 - b : {name2} is {b} years younger, so {name2} is {calc} years old.
      c3 = c2 / 2 : {name3} is half as old as {name2}, so {name3} is {calc} years old.
      c4 = c3 + t : In {t} years {name3} will be {calc} years old.""", {}),
    T("ratio", """A jar at the {place} holds {T} {item} that are either red or blue. The ratio of red {item} to blue
      {item} is {r}:{b}. {name} wants to know how the colors compare before {he} refills the jar. How many more blue
      {item} than red {item} are in the jar?""",
      "u 3-20", """
      c1 = r + b : The ratio has {calc} parts in total.
      c2 = T / c1 : Each part is {calc} {item}.
      c3 = c2 * b : There are {calc} blue {item}.
      c4 = c2 * r : There are {calc} red {item}.
      c5 = c3 - c4 : There are {calc} more blue {item} than red ones.""",
      {"item": ["marbles", "beads", "buttons", "candies", "gumballs"],
       "place": ["toy store", "classroom", "candy shop", "craft fair"], "r,b": RATIOS}, let="T = (r + b) * u"),
    T("ratio", """{name}'s favorite recipe for {dish} uses {a} cups of flour for every {b} cups of sugar. {He} is
      baking for {event} and wants to use {F} cups of flour, keeping the same ratio. How many cups of flour and
      sugar will {he} use altogether?""",
      "a 2-5; b 1-4; u 2-8", """
      c1 = F / a : {F} cups of flour is {calc} times the {a} cups in the recipe.
      c2 = c1 * b : So {he} needs {calc} cups of sugar.
      c3 = F + c2 : Together that is {calc} cups of flour and sugar.""",
      {"dish": ["banana bread", "oatmeal cookies", "pancakes", "shortbread"], "event": EVENTS}, let="F = a * u"),
    T("ratio", """{name} and {his} {sib2} {name2} earned ${M} together by {job} this summer. They agree to split the
      money in the ratio {p}:{q}, with {name2} getting the larger share. {name2} then spends ${s} of {his2} share on
      {thing}. How much money does {name2} have left?""",
      "u 5-40; s 5-60", """
      c1 = p + q : The ratio has {calc} parts.
      c2 = M / c1 : Each part is worth {calc} dollars.
      c3 = c2 * q : {name2}'s share is {calc} dollars.
      c4 = c3 - s : After spending ${s}, {name2} has {calc} dollars left.""",
      {"job": ["mowing lawns", "washing cars", "walking dogs", "selling lemonade", "babysitting"],
       "thing": ["a new video game", "concert tickets", "a pair of sneakers", "art supplies"], "p,q": RATIOS},
      let="M = (p + q) * u"),
    T("multi_step", """Every morning the bakery run by {name} bakes {a} trays of muffins with {b} muffins on each
      tray, and {c} trays of cookies with {d} cookies on each tray. Muffins sell for ${pm} each and cookies for ${pc}
      each. Ingredients and electricity cost ${cost} per day. If everything sells, how much profit does the bakery
      make in {n} days?""",
      "a 2-6; b 6-12; c 2-5; d 10-24; pm 2-4; pc 1|2; cost 40-150/10; n 3-7", """
      c1 = a * b : The bakery makes {calc} muffins a day.
      c2 = c * d : It also makes {calc} cookies a day.
      c3 = c1 * pm : The muffins bring in {calc} dollars.
      c4 = c2 * pc : The cookies bring in {calc} dollars.
      c5 = c3 + c4 : Daily sales are {calc} dollars.
      c6 = c5 - cost : After costs, the daily profit is {calc} dollars.
      c7 = c6 * n : Over {n} days the profit is {calc} dollars.""", {}, check="c6 > 0"),
    T("multi_step", """{name} is planning a three-day road trip. {He} will drive {D1} miles on the first day, {D2}
      miles on the second day and {D3} miles on the third day. {His} car goes {g} miles on one gallon of gas, and gas
      costs ${p} per gallon. {He} also expects to pay ${t} in tolls. How much will the trip cost {him} for gas and
      tolls?""",
      "D1 100-400/10; D2 100-400/10; D3 100-400/10; g 20|25|30|40; p 3-5; t 5-30", """
      c1 = D1 + D2 : The first two days cover {calc} miles.
      c2 = c1 + D3 : With the third day the trip is {calc} miles.
      c3 = c2 / g : The car needs {calc} gallons of gas.
      c4 = c3 * p : The gas costs {calc} dollars.
      c5 = c4 + t : With tolls, the trip costs {calc} dollars.""", {}),
    T("multi_step", """The {club} at {school} is raising money for {cause}. Each of the {n} members sells {k} boxes of
      cookies at ${p} a box. The club keeps {pct}% of the sales, and the rest goes to the cookie company. A local shop
      also donates ${dn}. The club's goal is ${G}. How much more money does the club need to reach its goal?""",
      "n 8-25; k 5-15; p 4|5|6; pct 20|25|40|50; dn 20-100/10; G 800-2500/100", """
      c1 = n * k : The members sell {calc} boxes.
      c2 = c1 * p : The sales total {calc} dollars.
      c3 = c2 * pct / 100 : The club keeps {calc} dollars.
      c4 = c3 + dn : With the donation the club has {calc} dollars.
      c5 = G - c4 : The club still needs {calc} dollars.""",
      {"club": ["chess club", "robotics club", "garden club", "debate team"],
       "school": ["Maple Hill School", "Oakwood Academy", "Lincoln School"],
       "cause": ["a class trip", "new library books", "an animal shelter", "new team uniforms"]}, check="c5 > 0"),
    T("multi_step", """A dairy farmer named {name} has {c} cows, and each cow gives {m} liters of milk a week. {He}
      sells the milk in bottles of {z} liters for ${p} per bottle. Feed for the herd costs ${f} per week. {He} shares
      the profit equally with {his} {k} business partners. After {w} weeks, how much money does each of them get?""",
      "c 5-30; m 100-200/10; z 2|4|5; p 3-8; f 100-600/50; w 2-6; k 1-3", """
      c1 = c * m : The herd gives {calc} liters a week.
      c2 = c1 * w : In {w} weeks that is {calc} liters.
      c3 = c2 / z : That fills {calc} bottles.
      c4 = c3 * p : The bottles sell for {calc} dollars.
      c5 = f * w : Feed costs {calc} dollars over {w} weeks.
      c6 = c4 - c5 : The profit is {calc} dollars.
      c7 = k + 1 : The profit is shared among {calc} people.
      c8 = c6 / c7 : Each of them gets {calc} dollars.""", {}),
]

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Lt: operator.lt, ast.Gt: operator.gt}
_CALC = re.compile(r"(\d+(?: [-+*/] \d+)+) = (\d+)")


class Reject(Exception):
    """A draw whose numbers do not work out (inexact division, non-positive value, failed check)."""


def evaluate(expr: str, env: dict[str, int]) -> int:
    """Integer arithmetic (+ - * /, comparisons) on names in `env`; inexact division raises Reject."""
    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            return env[node.id]
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            return _OPS[type(node.ops[0])](ev(node.left), ev(node.comparators[0]))
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            a, b = ev(node.left), ev(node.right)
            if b == 0 or a % b:
                raise Reject(expr)
            return a // b
        if isinstance(node, ast.BinOp):
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        raise ValueError(f"unsupported expression {expr!r}")
    return ev(ast.parse(expr.strip(), mode="eval"))


class _Fmt(string.Formatter):
    def format_field(self, value, spec):
        return FRAC[value] if spec == "frac" else super().format_field(value, spec)


FMT = _Fmt()


def draw_numbers(rng: random.Random, spec: str) -> dict[str, int]:
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        var, rng_spec = part.split()
        if "|" in rng_spec:
            out[var] = rng.choice([int(v) for v in rng_spec.split("|")])
        else:
            lo, _, rest = rng_spec.partition("-")
            hi, _, step = rest.partition("/")
            out[var] = rng.randrange(int(lo), int(hi) + 1, int(step or 1))
    return out


def persona_fields(people) -> dict[str, str]:
    env = {}
    for suffix, (name, g) in zip(["", "2", "3"], people):
        he, him, his, sib = PRONOUNS[g]
        env.update({f"name{suffix}": name, f"he{suffix}": he, f"him{suffix}": him, f"his{suffix}": his,
                    f"He{suffix}": he.capitalize(), f"His{suffix}": his.capitalize(), f"sib{suffix}": sib})
    return env


def check_rationale(rationale: str, answer: str, steps: int) -> None:
    """Re-derive every `a op b = c` in the rationale and the final line; raise if anything is off."""
    *lines, last = rationale.split("\n")
    assert last == f"The answer is {answer}.", last
    assert len(lines) == steps, rationale
    for line in lines:
        (lhs, rhs), = _CALC.findall(line)
        assert evaluate(lhs, {}) == int(rhs), line


def math_row(rng: random.Random, tmpl: dict) -> dict:
    """One problem from `tmpl`: draw until every value is a positive integer and the checks hold."""
    for _ in range(10_000):
        env = persona_fields(rng.sample(NAMES, 3))
        for key, options in sorted(tmpl["pick"].items()):
            choice = rng.choice(options)
            env.update(zip(key.split(","), choice if isinstance(choice, tuple) else (choice,)))
        nums = draw_numbers(rng, tmpl["nums"])
        nums.update({k: env.pop(k) for k in [k for k, v in env.items() if isinstance(v, int)]})
        try:
            for var, expr in tmpl["let"]:
                nums[var.strip()] = evaluate(expr, nums)
            lines = []
            for var, expr, text in tmpl["steps"]:
                nums[var] = value = evaluate(expr, nums)
                if value <= 0:
                    raise Reject(expr)
                calc = re.sub(r"[A-Za-z_]\w*", lambda m: str(nums[m.group()]), expr) + f" = {value}"
                line = FMT.format(text, calc=calc, **env, **nums)
                lines.append(line[0].upper() + line[1:])
            if not all(evaluate(c, nums) for c in tmpl["check"]):
                raise Reject(tmpl["check"])
        except Reject:
            continue
        answer = str(value)
        rationale = "\n".join(lines + [f"The answer is {answer}."])
        check_rationale(rationale, answer, len(lines))
        return {"question": FMT.format(tmpl["question"], **env, **nums), "answer": answer,
                "rationale": rationale, "skill": tmpl["skill"], "steps": len(lines)}
    raise RuntimeError(f"template never worked out: {tmpl['question'][:60]}")


def make_math(rng: random.Random) -> dict[str, list[dict]]:
    order = [i % len(MATH) for i in range(TOTAL)]
    rng.shuffle(order)
    rows, seen = [], set()
    for i in order:
        while (row := math_row(rng, MATH[i]))["question"] in seen:
            pass
        seen.add(row["question"])
        rows.append({**row, "_t": i})
    splits = split_rows(rng, "math", rows, strat=lambda r: r["_t"], cover=lambda r: r["skill"])
    return {s: [{k: v for k, v in r.items() if k != "_t"} for r in rs] for s, rs in splits.items()}


# ============================================================================== classify

SLOTS = {
    "product": ["blender", "desk lamp", "rain jacket", "coffee grinder", "pair of headphones", "backpack",
                "phone case", "yoga mat", "kettle", "office chair"],
    "order": [f"#{n}" for n in range(48213, 48213 + 7 * 40, 7)],
    "amount": ["$12.99", "$24.50", "$39.00", "$54.20", "$89.99", "$120.00"],
    "amount2": ["$9.99", "$19.00", "$29.50", "$45.00"],
    "days": ["three", "four", "five", "six", "ten", "twelve"],
    "weekday": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"],
    "place": ["on the bus", "at the gym", "at the airport", "on the train", "at a concert", "in a taxi"],
    "last4": ["4417", "0932", "7785", "2290", "6051"],
    "street": ["14 Oak Street", "22 Harbor Road", "7 Mill Lane", "85 Elm Avenue", "3 Station Square"],
    "city": ["Leeds", "Denver", "Porto", "Lyon", "Austin", "Dublin"],
    "plan": ["Basic", "Starter", "Standard", "Family"],
    "plan2": ["Plus", "Business", "Team"],
    "screen": ["settings", "checkout", "order history", "profile", "search"],
    "device": ["iPhone", "Android phone", "laptop", "tablet"],
    "n": ["three", "five", "ten", "twenty"],
}
OPENERS = ["", "", "Hi,", "Hello,", "Hi there.", "Good morning.", "Hello support team,", "Hey,", "Quick question:"]
CONTEXT = ["", "", "", "I have been a customer for years.", "This is the second time I am writing.",
           "I am writing from my work email."]
CLOSERS = ["", "", "Thanks.", "Thank you.", "Please help.", "Thanks in advance.", "Any help is appreciated.",
           "I'd appreciate a quick reply."]

# label, description, cue phrases, easy messages (contain a cue), hard messages (indirect / confusable)
LABELS = [
    ("card_lost", "The customer's payment card is lost or stolen and should be blocked or replaced.",
     ["lost my card", "lost my debit card", "lost my credit card", "card was stolen", "card has been stolen"],
     ["I lost my card {place} and need it blocked right away.",
      "My card was stolen {place}, please block it and send me a new one.",
      "I think I lost my debit card {place}. Can you freeze it before someone uses it?",
      "I lost my credit card ending in {last4} and would like a replacement.",
      "Someone took my wallet {place} and my card was stolen with it.",
      "My card has been stolen. How do I get a new one with a different number?"],
     ["My wallet is gone since {weekday} and the plastic ending in {last4} was in it. Please make sure nobody can "
      "pay with it.",
      "Please lock the card ending in {last4}, it fell out of my pocket {place} and I never got it back.",
      "Someone has my wallet now, I guess; it disappeared {place}. I don't want any charges I didn't make.",
      "Is there a way to get a replacement for the card ending in {last4}? I have no idea where it went after "
      "{weekday}.",
      "I am not asking for a refund, I just need the card ending in {last4} stopped because it is no longer in my "
      "possession."]),
    ("refund_request", "The customer wants their money back for a purchase or return.",
     ["refund"],
     ["I would like a refund for the {product} I bought last week.",
      "Please refund order {order}, the {product} arrived damaged.",
      "How do I get a refund for a {product} that I returned {days} days ago?",
      "The {product} does not work as described and I want a full refund.",
      "Can I request a refund on order {order}? I changed my mind about the {product}.",
      "I sent the {product} back and I am still waiting for my refund."],
     ["The {product} is not what I expected, so I'd like my money back please.",
      "I shipped the {product} back {days} days ago. When will the amount show up on my card again?",
      "I was not charged incorrectly, I just don't want the {product} anymore and want to be paid back.",
      "Order {order} was a gift that nobody wanted. Can the {amount} go back to the original payment method?",
      "I don't want to cancel my subscription, I only want the money for the {product} returned since it stopped "
      "working after a day."]),
    ("password_reset", "The customer forgot their password or needs a new one set.",
     ["password"],
     ["I forgot my password and need to reset it.",
      "How do I reset my password? I can't remember it.",
      "Please send me a password reset email, I forgot the old one.",
      "I want to change my password because I used the same one on another site.",
      "The password reset email never arrives. Can you send another one?",
      "Can you help me reset my password? I forgot it after my vacation."],
     ["I can't remember what I typed to sign in last time, and I'd like to choose something new.",
      "I'm not locked out, the site just says my login details are wrong because I can't recall them. How do I "
      "set new ones?",
      "The forgot link on the sign-in page keeps sending me back to the same page. I just want new login details.",
      "My old {device} remembered my sign-in details but I have a new one now and no idea what they were.",
      "The email with the link to choose new login details never came, and I checked spam twice."]),
    ("delivery_late", "An order has not arrived by the promised date.",
     ["late", "not arrived", "hasn't arrived", "delayed", "where is my order"],
     ["My order {order} is late. It was supposed to arrive on {weekday}.",
      "The {product} I ordered has not arrived yet and it is {days} days late.",
      "Where is my order? The estimate was {weekday}.",
      "My parcel is delayed again, order {order}. When will it arrive?",
      "Order {order} still hasn't arrived, it was due {days} days ago.",
      "Why is my delivery so late? I ordered the {product} two weeks ago."],
     ["Tracking for order {order} has said in transit for {days} days now and nothing has moved.",
      "I'm not asking for a refund yet, I just want to know when the {product} will actually get here. It was "
      "promised for {weekday}.",
      "The courier page says my {product} was out for delivery on {weekday}, but there is still nothing at my door.",
      "It's been {days} days past the date you gave me and the box with the {product} is nowhere to be seen.",
      "My new address is correct on the order, the parcel with the {product} just never showed up on {weekday}."]),
    ("billing_error", "The customer was charged the wrong amount, twice, or for something they did not buy.",
     ["charged twice", "charged me twice", "double charged", "overcharged", "wrong amount", "billing error",
      "incorrect charge", "charged incorrectly"],
     ["I was charged twice for order {order}. Please fix it.",
      "My last invoice has the wrong amount, it says {amount} instead of {amount2}.",
      "There is a billing error on my account this month.",
      "I think I was overcharged, the price was {amount2} but I paid {amount}.",
      "You double charged my card for the same purchase on {weekday}.",
      "There is an incorrect charge of {amount} on my statement."],
     ["My statement shows two identical payments of {amount} on {weekday} for a single order.",
      "I don't want a refund for the {product}, I just need the extra {amount} you took by mistake corrected on my "
      "invoice.",
      "The monthly total went up to {amount} even though nothing changed on my side. How was that calculated?",
      "Why does this month's invoice include a fee for a {plan2} plan I never had?",
      "I was billed {amount} for shipping on order {order}, but shipping was supposed to be free."]),
    ("cancel_subscription", "The customer wants to stop a recurring subscription or membership.",
     ["cancel my subscription", "cancel my membership", "end my subscription", "unsubscribe"],
     ["Please cancel my subscription at the end of this month.",
      "I want to cancel my subscription, it is too expensive for me now.",
      "How do I cancel my membership? I can't find the option in the app.",
      "I would like to end my subscription to the {plan} plan.",
      "Cancel my subscription please, I will not need it after {weekday}.",
      "Can you help me unsubscribe from the monthly box? I no longer need it."],
     ["Please make sure I'm not billed again after this month. I won't be using the service anymore.",
      "I'd like to stop the monthly plan entirely rather than upgrade it; the {plan} tier is not worth it for me.",
      "We're closing our small office, so there's no point in keeping the recurring payments going.",
      "I don't use the app anymore. What do I need to do so the automatic renewal on {weekday} doesn't happen?",
      "No need to fix anything, I just want the whole service switched off for good from next month."]),
    ("change_address", "The customer wants to update their shipping or billing address.",
     ["change my address", "update my address", "new address", "shipping address", "change the address"],
     ["I need to change my address to {street}, {city}.",
      "Please update my address on file, I moved to {street}.",
      "My new address is {street}, {city}. Can you update my account?",
      "How do I change the shipping address for order {order}?",
      "Can you change the address before the next delivery? It is now {street}.",
      "I moved last week, please use my new address: {street}, {city}."],
     ["I'm moving to {street} in {city} next week, so future parcels should go there instead.",
      "Order {order} hasn't shipped yet, right? Could it go to my sister's place on {street} instead?",
      "We relocated to {city}. Where in the account settings do I put where I live now?",
      "Nothing is late yet, I just want the {product} to go to {street} rather than my old flat.",
      "The place where you send my monthly box is out of date, I live on {street} now."]),
    ("account_locked", "The customer's account is locked, suspended or blocked and they cannot get in.",
     ["locked", "locked out", "suspended", "disabled"],
     ["My account is locked and I can't get in.",
      "I got locked out of my account after too many login attempts.",
      "Why is my account suspended? I didn't do anything wrong.",
      "My account has been locked since {weekday}, please unlock it.",
      "I keep getting a message that my account is disabled.",
      "Please help, I'm locked out even though I know my login details."],
     ["After a few wrong tries the site says I have to wait or contact support, even though I definitely know my "
      "password.",
      "I know my password is correct and I don't need to reset it, but the app refuses to let me in since "
      "{weekday}.",
      "The sign-in page says access to my profile is on hold for security reasons. What do I need to send you?",
      "Since this morning the app just says too many attempts and won't let me try again.",
      "I typed everything right, but now my profile is frozen and I can't see my orders."]),
    ("upgrade_plan", "The customer wants to move to a higher plan or add paid features.",
     ["upgrade", "premium"],
     ["I want to upgrade to the {plan2} plan today.",
      "How much does it cost to upgrade my account to premium?",
      "Can I upgrade from {plan} to {plan2} in the middle of the month?",
      "Please upgrade my plan, I need more storage.",
      "What do I get with premium compared to my {plan} plan?",
      "I'd like to upgrade so my whole team can use the account."],
     ["I keep hitting the limit of {n} projects. What do I need to do to get more of them?",
      "How much extra would I pay per month for the bigger tier, and can I switch today?",
      "My {plan} plan is not enough anymore; I'd like the one with more storage and priority support.",
      "The billing page only shows my current {plan} option. Where can I pick something with more features?",
      "Not a bug report, just a question: is there a tier above {plan} that allows {n} users?"]),
    ("technical_bug", "The app or website malfunctions: crashes, error messages, broken pages.",
     ["bug", "crash", "crashes", "crashing", "glitch", "error message", "error code"],
     ["The app crashes every time I open the {screen} screen.",
      "I found a bug: the {screen} page shows a blank screen.",
      "I get an error message when I try to save my profile.",
      "Your website keeps crashing on my {device}.",
      "There is a glitch in the app, the buttons on the {screen} screen do nothing.",
      "Error code 500 appears whenever I load the {screen} page."],
     ["Every time I press pay, the screen goes white and nothing happens.",
      "The tracking page never finishes loading on my {device}, it just spins forever.",
      "The checkout button does nothing when I click it, so I can't upgrade.",
      "Since the last update the app closes by itself whenever I open the {screen} screen.",
      "Ever since the update, the password field won't accept any typing on my {device}."]),
]
CUES = {label: re.compile(r"\b(" + "|".join(map(re.escape, cues)) + r")\b", re.I)
        for label, _, cues, _, _ in LABELS}
PER_LABEL, HARD_PER_LABEL = TOTAL // len(LABELS), 12  # 40 messages a label, 30% hard


def ticket(rng: random.Random, core: str) -> str:
    """A message: optional opener and context around a core, slots filled."""
    opener, context, closer = rng.choice(OPENERS), rng.choice(CONTEXT), rng.choice(CLOSERS)
    body = " ".join(p for p in (context, core.format(**{k: rng.choice(v) for k, v in SLOTS.items()})) if p)
    if opener.endswith((",", ":")) and not re.match(r"I\b", body):
        body = body[0].lower() + body[1:]
    return " ".join(p for p in (opener, body, closer) if p)


def make_classify(rng: random.Random) -> dict[str, list[dict]]:
    rows, seen = [], set()
    for label, _, _, easy, hard in LABELS:
        for difficulty, cores, n in (("easy", easy, PER_LABEL - HARD_PER_LABEL), ("hard", hard, HARD_PER_LABEL)):
            for i in range(n):
                while (text := ticket(rng, cores[i % len(cores)])) in seen:
                    pass
                seen.add(text)
                own = bool(CUES[label].search(text))
                other = any(CUES[o].search(text) for o in CUES if o != label)
                assert 8 <= nwords(text) <= 40, text
                assert (own and not other) if difficulty == "easy" else (not own or other), (label, text)
                rows.append({"text": text, "label": label, "difficulty": difficulty})
    return split_rows(rng, "classify", rows, strat=lambda r: (r["label"], r["difficulty"]),
                      cover=lambda r: r["label"])


# ============================================================================== multihop

ONSETS = "b d f g h k l m n p r s t v z br dr gr kr st tr th sk".split()
VOWELS = "a e i o u a e o".split()
CODAS = ["", "", "n", "r", "l", "s", "k", "m", "nd", "rn", "th"]
SECTORS = [("Motors", "vehicle", ["electric scooter", "delivery van", "farm tractor"]),
           ("Systems", "software", ["accounting app", "booking platform", "messaging app"]),
           ("Foods", "food", ["breakfast cereal", "frozen soup", "energy bar"]),
           ("Textiles", "textile", ["rain jacket", "wool blanket", "hiking boot"]),
           ("Optics", "optics", ["camera lens", "telescope", "microscope"]),
           ("Instruments", "musical instrument", ["digital piano", "studio microphone", "electric violin"]),
           ("Labs", "pharmaceutical", ["allergy tablet", "cough syrup", "vitamin drink"]),
           ("Energy", "energy", ["solar panel", "home battery", "wind turbine"]),
           ("Works", "engineering", ["water pump", "steam boiler", "metal lathe"])]
PROFESSIONS = ["engineer", "chemist", "designer", "accountant", "architect", "economist", "pilot", "teacher",
               "surgeon", "journalist", "geologist", "photographer"]
HOBBIES = ["collects old maps", "plays chess", "keeps bees", "restores wooden boats", "grows orchids",
           "writes short stories", "runs marathons", "paints landscapes", "sings in a choir", "builds model trains"]
KNOWN = ["glass workshops", "spice market", "old harbour", "stone bridges", "tea houses", "clock tower",
         "paper mills", "horse fairs", "university", "lantern festival", "botanical garden", "copper mines"]
EXPORTS = ["wool", "copper", "olive oil", "timber", "salt", "tea", "glassware", "horses", "wine", "rice", "cotton",
           "marble"]
SUBJECTS = ["physics", "law", "music", "history", "medicine", "chemistry", "architecture", "economics"]
SEAS = ["Amber Sea", "Grey Sea", "Salt Sea", "Northern Gulf"]
MOUNTAIN_FACTS = ["Its upper slopes are covered in snow for most of the year.", "Pine forests cover its lower slopes.",
                  "A cable car climbs its eastern ridge.", "Shepherds graze sheep in its high meadows."]
RIVER_FACTS = ["Its banks are known for willow trees and old water mills.", "Barges carry grain along its lower "
               "course.", "Anglers come to it for trout every summer.", "It floods its valley most springs."]
QUALITIES = ["low price", "quiet operation", "light weight", "long battery life", "simple design", "durability"]

# Each question needs both documents: the hop-1 document names the bridge entity, whose own
# document (which does not name the hop-1 entity) holds the answer.
MH_TEMPLATES = [  # name, question, hop-1 entity type, hop-1 entity -> (bridge, answer)
    ("founder_birth_country", "In which country was the founder of {e} born?", "company",
     lambda w, e: (e["founder"], w[e["founder"]]["bcountry"])),
    ("company_hq_city", "In which city is the company that makes the {e} headquartered?", "product",
     lambda w, e: (e["company"], w[e["company"]]["hq"])),
    ("designer_birth_city", "In which city was the designer of the {e} born?", "product",
     lambda w, e: (e["designer"], w[e["designer"]]["bcity"])),
    ("product_founder", "Who founded the company that makes the {e}?", "product",
     lambda w, e: (e["company"], w[e["company"]]["founder"])),
    ("designer_employer", "Which company employs the designer of the {e}?", "product",
     lambda w, e: (e["designer"], w[e["designer"]]["employer"])),
    ("home_river", "Which river flows through the city where {e} lives?", "person",
     lambda w, e: (e["home"], w[e["home"]]["river"])),
    ("employer_founded", "In what year was the company that {e} works for founded?", "person",
     lambda w, e: (e["employer"], str(w[e["employer"]]["year"]))),
    ("mountain_capital", "What is the capital of the country where {e} stands?", "mountain",
     lambda w, e: (e["country"], w[e["country"]]["capital"])),
    ("city_currency", "Which currency is used in the country where {e} is located?", "city",
     lambda w, e: (e["country"], w[e["country"]]["currency"])),
    ("city_river_source", "On which mountain does the river that flows through {e} rise?", "city",
     lambda w, e: (e["river"], w[e["river"]]["mountain"])),
    ("river_source_height", "How high, in metres, is the mountain where the {e} rises?", "river",
     lambda w, e: (e["mountain"], str(w[e["mountain"]]["height"]))),
]


def build_world(rng: random.Random) -> dict[str, dict]:
    """The invented world: entities by title, each with its facts and a 30-80 word `text`.

    Distractors: six cities are variants of another city's name ("Port X", "X Falls"), three
    rivers share a city's name, ten companies share a stem with another company, twelve
    pairs of people share a surname, and some products share a name with another product.
    """
    used: set[str] = set()

    def fresh(syllables: int = 2, suffix: str = "") -> str:
        while True:
            w = ("".join(rng.choice(ONSETS) + rng.choice(VOWELS) for _ in range(syllables))
                 + rng.choice(CODAS)).capitalize() + suffix
            if w.lower() not in used and len(w) >= 4:
                used.add(w.lower())
                return w

    w: dict[str, dict] = {}
    countries = [fresh(2, rng.choice(["ia", "ar", "en", "ora", "esh"])) for _ in range(12)]
    city_names = [fresh(2) for _ in range(34)]
    city_names += [f"{pre}{rng.choice(city_names[:34])}{post}" for pre, post in
                   [("New ", ""), ("Port ", ""), ("", " Falls"), ("Upper ", ""), ("", " Bay"), ("Old ", "")]]
    for c in countries:
        w[c] = {"type": "country", "currency": fresh(2), "language": fresh(2, "ese"), "sea": rng.choice(SEAS),
                "cities": [], "rivers": [], "pop": rng.randint(2, 60), "export": rng.choice(EXPORTS),
                "independent": rng.randint(1600, 1990)}
    for i, name in enumerate(city_names):
        country = countries[i % 12]
        w[name] = {"type": "city", "country": country, "year": rng.randint(900, 1850), "known": rng.choice(KNOWN),
                   "pop": rng.randint(20, 900), "hq": []}
        w[country]["cities"].append(name)
    for i in range(18):  # rivers; each rises on its own mountain in the same country
        country = countries[i % 12]
        base = rng.choice(city_names[:34]) if i in (3, 9, 15) else fresh(2)
        river, mountain = f"{base} River", (f"Mount {fresh(2)}" if i % 6 else f"{fresh(2)} Peak")
        w[river] = {"type": "river", "country": country, "mountain": mountain, "length": rng.randint(80, 1400)}
        w[mountain] = {"type": "mountain", "country": country, "height": rng.randint(1200, 4800), "climber": None}
        w[country]["rivers"].append(river)
    for c in countries:
        for j, city in enumerate(w[c]["cities"]):
            w[city]["river"] = w[c]["rivers"][j % len(w[c]["rivers"])]
        w[c]["capital"] = w[c]["cities"][0]

    stems = [fresh(rng.choice([2, 3])) for _ in range(45)]
    companies = [f"{s} {rng.choice(SECTORS)[0]}" for s in stems]
    while len(companies) < 55:  # distractors: a known stem with another sector
        if (name := f"{rng.choice(stems)} {rng.choice(SECTORS)[0]}") not in companies:
            companies.append(name)
    givens = [fresh(2) for _ in range(70)]
    surnames = [fresh(rng.choice([2, 3])) for _ in range(98)]
    people: list[str] = []
    for i in range(110):  # the first 12 surnames are shared by two people each
        while (p := f"{rng.choice(givens)} {surnames[i % 98]}") in people:
            pass
        people.append(p)
    rng.shuffle(people)
    for p in people:
        bcity = rng.choice(city_names)
        w[p] = {"type": "person", "gender": rng.choice("fm"), "prof": rng.choice(PROFESSIONS),
                "born": rng.randint(1935, 1995), "bcity": bcity, "bcountry": w[bcity]["country"],
                "home": rng.choice(city_names), "hobby": rng.choice(HOBBIES), "subject": rng.choice(SUBJECTS),
                "studied": rng.choice(city_names)}
    for i, co in enumerate(companies):  # the first 55 people found one company each
        hq = rng.choice(city_names)
        w[co] = {"type": "company", "sector": next(s for s in SECTORS if co.endswith(s[0])), "hq": hq,
                 "founder": people[i], "year": rng.randint(1890, 2015), "staff": rng.randint(40, 9000),
                 "office": rng.choice(city_names)}
        w[hq]["hq"].append(co)
        w[people[i]]["employer"], w[people[i]]["founded"] = co, True
    for p in people[len(companies):]:
        w[p]["employer"], w[p]["founded"] = rng.choice(companies), False
    words = [fresh(2) for _ in range(36)]
    products: list[str] = []
    for i in range(45):  # 36 distinct names, then 9 that reuse one of them with another number
        co = rng.choice(companies)
        word = words[i] if i < 36 else rng.choice(words)
        while (name := f"{word} {rng.randrange(1, 10) * 100}") in products:
            pass
        products.append(name)
        w[name] = {"type": "product", "company": co, "designer": rng.choice(people),
                   "kind": rng.choice(w[co]["sector"][2]), "year": rng.randint(max(1950, w[co]["year"] + 1), 2023)}
    for m in [t for t, e in w.items() if e["type"] == "mountain"][::2]:
        climber = rng.choice(people)
        w[m]["climber"], w[m]["climb_year"] = climber, w[climber]["born"] + rng.randint(20, 35)
    assert len(w) == 12 + len(city_names) + 2 * 18 + len(people) + len(companies) + len(products), "title clash"
    for title, e in w.items():
        e["text"] = describe(rng, w, title, e)
        assert 30 <= nwords(e["text"]) <= 80, (title, e["text"])
    return w


def _an(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _plural(word: str) -> str:
    return word[:-1] + "ies" if word.endswith("y") else word + ("es" if word.endswith("s") else "s")


def describe(rng: random.Random, w: dict, t: str, e: dict) -> str:
    """The document text for entity `t` (it names the entities it points to, never the reverse)."""
    kind = e["type"]
    if kind == "country":
        return (f"{t} is a country on the {e['sea']}. Its capital is {e['capital']}, and its currency is the "
                f"{e['currency']}. Most people there speak {e['language']}. The country became independent in "
                f"{e['independent']} and is known for its {e['export']}. About {e['pop']} million people live there.")
    if kind == "city":
        home = f" It is home to the headquarters of {e['hq'][0]}." if e["hq"] else ""
        return (f"{t} is a city located in the country of {e['country']}. The {e['river']} flows through it. It "
                f"was founded in {e['year']} and is known for its {e['known']}. About {e['pop']} thousand people "
                f"live there.{home}")
    if kind == "river":
        return (f"The {t} is a river in {e['country']}. It rises on {e['mountain']} and flows for {e['length']} "
                f"kilometres before it reaches the {w[e['country']]['sea']}. {rng.choice(RIVER_FACTS)}")
    if kind == "mountain":
        climb = (f"It was first climbed in {e['climb_year']} by {e['climber']}." if e["climber"]
                 else "Its summit was not reached until modern times.")
        return (f"{t} is a mountain in {e['country']}, rising to {e['height']} metres above sea level. {climb} "
                + " ".join(rng.sample(MOUNTAIN_FACTS, 2)))
    if kind == "company":
        goods = [_plural(g) for g in e["sector"][2]]
        return (f"{t} is {_an(e['sector'][1])} company headquartered in {e['hq']}. It was founded in {e['year']} "
                f"by {e['founder']}. It makes {goods[0]}, {goods[1]} and {goods[2]}. It employs about {e['staff']} "
                f"people and runs a research centre in {e['office']}.")
    if kind == "product":
        return (f"The {t} is {_an(e['kind'])} made by {e['company']}. It was launched in {e['year']} and was "
                f"designed by {e['designer']}. Reviewers praised its {rng.choice(QUALITIES)}, and a new version is "
                f"planned for {e['year'] + rng.randint(3, 9)}.")
    he, _, his, _ = PRONOUNS[e["gender"]]
    work = ("has run a company of " + his + " own for many years" if e["founded"]
            else f"works at {e['employer']}")
    return (f"{t} is {_an(e['prof'])} born in {e['born']} in {e['bcity']}, a city in {e['bcountry']}. "
            f"{he.capitalize()} studied {e['subject']} in {e['studied']}, lives in {e['home']} and {work}. "
            f"In {his} free time {he} {e['hobby']}.")


def mentions(text: str, name: str) -> bool:
    return re.search(r"(?<![\w-])" + re.escape(name) + r"(?![\w-])", text) is not None


def make_multihop(rng: random.Random) -> tuple[dict[str, list[dict]], list[dict]]:
    """The corpus and the question splits; only questions the search tool can follow are kept."""
    world = build_world(rng)
    titles = list(world)
    rng.shuffle(titles)
    corpus = sorted(({"id": f"d{i:04d}", "title": t, "text": world[t]["text"]} for i, t in enumerate(titles)),
                    key=lambda d: d["id"])
    index = Corpus(corpus)
    found = {name: [] for name, *_ in MH_TEMPLATES}
    for name, question, etype, follow in MH_TEMPLATES:
        for title, e in world.items():
            if e["type"] != etype or not (hop := follow(world, e)):
                continue
            bridge, answer = hop
            q = question.format(e=title)
            ok = (mentions(e["text"], bridge) and mentions(world[bridge]["text"], answer)
                  and not mentions(e["text"], answer) and not mentions(world[bridge]["text"], title)
                  and title in [d["title"] for d in index.search(q, 3)]
                  and bridge in [d["title"] for d in index.search(bridge, 3)])
            if ok:
                found[name].append({"question": q, "answer": answer, "hops": [title, bridge], "bridge": bridge,
                                    "template": name})
    rows, left = [], TOTAL
    for i, name in enumerate(sorted(found, key=lambda n: len(found[n]))):
        take = min(len(found[name]), left // (len(found) - i))
        rows += rng.sample(found[name], take)
        left -= take
    assert left == 0, f"only {TOTAL - left} multihop questions survived"
    return split_rows(rng, "multihop", rows, strat=lambda r: r["template"], cover=lambda r: r["template"]), corpus


# ================================================================================ output


def dump_jsonl(rows: list[dict]) -> bytes:
    text = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows)
    assert text.isascii(), "shipped data is ASCII so any locale can read it"
    return text.encode("utf-8")


def build() -> dict[str, bytes]:
    """Every shipped file, path relative to DATA_DIR -> bytes."""
    files: dict[str, tuple[bytes, int]] = {}
    mh_splits, corpus = make_multihop(random.Random(SEEDS["multihop"]))
    datasets = {"math": make_math(random.Random(SEEDS["math"])),
                "classify": make_classify(random.Random(SEEDS["classify"])), "multihop": mh_splits}
    for task, splits in datasets.items():
        for split, rows in splits.items():
            files[f"{task}/{split}.jsonl"] = (dump_jsonl(rows), len(rows))
    files["multihop/corpus.jsonl"] = (dump_jsonl(corpus), len(corpus))
    labels = [{"label": label, "description": desc} for label, desc, *_ in LABELS]
    files["classify/labels.json"] = ((json.dumps(labels, indent=2) + "\n").encode("utf-8"), len(labels))
    manifest = {"generator": "harness/tasks/generate.py", "seeds": SEEDS,
                "files": {p: {"rows": n, "sha256": hashlib.sha256(b).hexdigest()}
                          for p, (b, n) in sorted(files.items())}}
    out = {p: b for p, (b, _) in files.items()}
    out["MANIFEST.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.tasks.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the files on disk differ from the generator")
    args = parser.parse_args(argv)
    files = build()
    if args.check:
        stale = [p for p, b in sorted(files.items())
                 if not (DATA_DIR / p).is_file() or (DATA_DIR / p).read_bytes() != b]
        if stale:
            print(f"{len(stale)} shipped data file(s) differ from the generator ({', '.join(stale)}); "
                  f"run `python -m harness.tasks.generate`")
            return 1
        print("data matches generator")
        return 0
    for path, data in files.items():
        (DATA_DIR / path).parent.mkdir(parents=True, exist_ok=True)
        (DATA_DIR / path).write_bytes(data)
    print(f"wrote {len(files)} files under {DATA_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
