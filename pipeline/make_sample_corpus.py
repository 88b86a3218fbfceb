"""Writes the bundled sample corpus (pipeline/data/sample_corpus/), used by `cm3-data run` without --input.

- news.warc.gz: news-like pages written for this project (English prose, several paragraphs, with nav,
  footer, cookie banner and related-links boilerplate), a syndicated paragraph shared by several pages
  (span dedup), one page crawled twice (URL dedup), a German and a French page, a lorem-ipsum page, a stub,
  a page in windows-1252, a binary record labelled text/html; plus the photos as image response records
  (scikit-image sample images, downscaled JPEG), one truncated image record, one unused image record.
- enwiki-sample.ndjson.tar.gz: Wikipedia-like articles in the Wikimedia Enterprise HTML dump layout
  (tar.gz of NDJSON: name, url, article_body.html, in_language.identifier ...); their images resolve through
  the WARC's image records (no network).

Everything is deterministic (fixed dates, record ids from URLs, gzip mtime 0), so re-running the script
reproduces the committed bytes. Run: python -m pipeline.make_sample_corpus
"""

from __future__ import annotations

import base64
import gzip
import html
import io
import json
import re
import tarfile
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parent / "data" / "sample_corpus"
DATE = "2024-05-14T09:30:00Z"
SITE = "https://www.harbourtown-herald.example"
IMG = "https://media.harbourtown-herald.example/photos"
WIKI = "https://en.wikipedia.org/wiki"
UPLOAD = "https://upload.wikimedia.org/wikipedia/commons"

# (skimage name, URL of the photo) - every photo is stored as an image record in the WARC
PHOTOS = {
    "rocket": f"{IMG}/launch-pad.jpg",
    "hubble_deep_field": f"{IMG}/deep-field.jpg",
    "coffee": f"{IMG}/morning-cup.jpg",
    "chelsea": f"{IMG}/shelter-cat.jpg",
    "astronaut": f"{IMG}/portrait-gallery.jpg",
    "retina": f"{IMG}/eye-scan.jpg",
    "immunohistochemistry": f"{IMG}/tissue-sample.jpg",
    "coins": f"{IMG}/coin-auction.jpg",
    "moon": f"{UPLOAD}/thumb/e/e1/Full_Moon_Luc_Viatour.jpg",
    "motorcycle_left": f"{IMG}/motorcycle-show.jpg",
    "logo": f"{UPLOAD}/thumb/3/38/Scikit_image_logo.png",
    "camera": f"{IMG}/photo-club-portrait.jpg",
    "brick": f"{IMG}/old-mill-wall.jpg",
    "grass": f"{IMG}/park-meadow.jpg",
    "colorwheel": f"{IMG}/unused-colour-wheel.jpg",
}
BROKEN_IMAGE = f"{IMG}/damaged-upload.jpg"
# set by corpus_copy: every sentence of copy N ends in ", edition N." so that copies do not share prose
EDITION: int | None = None
_SENTENCE_END = re.compile(r"(?<=[a-z])\.(?= [A-Z]|</p>)")


def edition(html_text: str) -> str:
    """The page as the current copy prints it (unchanged for the bundled corpus itself)."""
    if EDITION is None:
        return html_text
    return _SENTENCE_END.sub(f", edition {EDITION}.", html_text)


SYNDICATED = (
    "The regional weather service expects a dry and mild week across the coast. "
    "Temperatures should climb to nineteen degrees by Thursday afternoon. "
    "Forecasters advise boaters to check the harbour notices before heading out, because strong gusts remain "
    "possible near the headland."
)

NEWS = [
    (
        "city-council-approves-bike-lanes",
        "City council approves protected bike lanes on Harbour Road",
        [
            "The city council voted seven to two on Tuesday evening to build protected bike lanes along the "
            "full length of Harbour Road. The project will replace one lane of parking on each side with a "
            "raised cycle track. Construction is scheduled to begin in early autumn.",
            "Supporters said the road has become one of the most dangerous in the district for cyclists. "
            "Police recorded fourteen collisions involving bicycles there last year. Several parents told "
            "the council that their children are afraid to ride to school.",
            "Some shop owners worried that losing parking spaces would hurt their business. The council "
            "agreed to add short-term loading bays on the side streets. A review of the changes is planned "
            "for the end of next year.",
            SYNDICATED,
        ],
        [],
    ),
    (
        "rocket-launch-draws-crowds",
        "Rocket launch draws record crowds to the north beach",
        [
            "Thousands of people gathered on the north beach at dawn on Saturday to watch a commercial rocket "
            "lift off from the coastal launch site. Traffic was backed up for several kilometres before "
            "sunrise. Many families brought blankets and thermos flasks to wait in the cold.",
            "The rocket carried two small weather satellites into orbit. Engineers at the launch site said "
            "both spacecraft separated on schedule and sent their first signals within an hour. The next "
            "launch window opens in about six weeks.",
            "Local cafes reported their busiest morning of the year. One owner said she ran out of pastries "
            "before seven o'clock. The town plans to open extra car parks for future launches.",
        ],
        [("rocket", "A rocket standing on the launch pad before lift-off", "The rocket on the pad at dawn.")],
    ),
    (
        "astronomers-share-deep-field-image",
        "Amateur astronomers share a deep view of distant galaxies",
        [
            "Members of the Harbourtown astronomy club presented a talk on deep field images at the public "
            "library on Wednesday. The speakers explained how a long exposure of a tiny patch of sky can "
            "reveal thousands of galaxies. Almost every point of light in such a picture is a galaxy, not a "
            "star.",
            "The club meets on the first Friday of every month at the old observatory on the hill. Beginners "
            "are welcome, and telescopes are provided for those who do not own one. Members say clear winter "
            "nights offer the best views.",
            SYNDICATED,
        ],
        [
            (
                "hubble_deep_field",
                "Hundreds of small galaxies scattered across a dark sky",
                "A deep field view.",
            )
        ],
    ),
    (
        "coffee-prices-rise",
        "Coffee prices rise as cafes adjust their menus",
        [
            "The price of a cup of coffee in Harbourtown has risen by about twelve percent since January. "
            "Cafe owners blame higher costs for beans, milk and energy. Several cafes have started to offer "
            "smaller cups at a lower price.",
            "Importers say poor harvests in several growing regions have pushed up wholesale prices. They "
            "expect prices to remain high for at least another season. Some roasters are buying from new "
            "farms to spread the risk.",
            "Customers interviewed on Market Street were mostly understanding. One retired teacher said her "
            "morning coffee is a small luxury she is not willing to give up. Others said they now brew more "
            "coffee at home.",
        ],
        [("coffee", "A cup of coffee with latte art on a saucer", "A morning cup at a Market Street cafe.")],
    ),
    (
        "shelter-adoption-drive",
        "Animal shelter launches a summer adoption drive",
        [
            "The Harbourtown animal shelter has launched its summer adoption drive with reduced fees for cats "
            "and dogs. More than forty cats are currently waiting for a new home. Volunteers say the shelter "
            "is close to its capacity.",
            "Every animal is vaccinated, microchipped and checked by a vet before adoption. Families can meet "
            "the animals on weekday afternoons and on Saturday mornings. The staff will help match each pet "
            "with a suitable household.",
            "The shelter also needs volunteers to walk dogs and to foster kittens. Training sessions are held "
            "every second Sunday. Donations of blankets and food are always welcome.",
        ],
        [("chelsea", "A ginger tabby cat looking to the side", "One of the cats waiting for a new home.")],
    ),
    (
        "portrait-exhibition-opens",
        "Portrait exhibition opens at the maritime museum",
        [
            "A new exhibition of portraits opened at the maritime museum on Friday evening. The show brings "
            "together photographs of explorers, sailors and scientists from the last hundred years. Curators "
            "spent two years collecting the prints from private archives.",
            "The highlight of the exhibition is a large portrait of an astronaut in a white spacesuit. "
            "Visitors can also listen to recorded interviews with several of the people in the photographs. "
            "The audio guide is available in four languages.",
            "The exhibition runs until the end of October. Entry is free for children under twelve. The "
            "museum is open every day except Monday.",
        ],
        [
            (
                "astronaut",
                "Portrait of an astronaut in a white spacesuit holding a helmet",
                "The exhibition poster.",
            )
        ],
    ),
    (
        "eye-clinic-new-scanner",
        "Eye clinic installs a new retinal scanner",
        [
            "The eye clinic at the district hospital has installed a new scanner that takes detailed pictures "
            "of the retina. Doctors say it can detect early signs of diabetes and high blood pressure. The "
            "examination takes less than five minutes and does not hurt.",
            "Patients over fifty will be offered a scan as part of their regular check-up. The hospital hopes "
            "to reduce waiting times for specialist appointments. A second scanner will be installed at the "
            "health centre next spring.",
            SYNDICATED,
        ],
        [
            ("retina", "A colour photograph of the back of a human eye", "An image from the new scanner."),
            ("immunohistochemistry", "A stained tissue sample under a microscope", "A tissue sample."),
        ],
    ),
    (
        "coin-auction-record",
        "Rare coin collection sells for a record price",
        [
            "A collection of old silver coins sold for a record price at the auction house on Quay Street on "
            "Thursday. The coins were found in a biscuit tin in the attic of a farmhouse last winter. The "
            "family had no idea the tin contained anything valuable.",
            "Experts say the oldest coins were minted more than two hundred years ago. Most of them are in "
            "excellent condition. The buyer, a private collector, asked not to be named.",
            "The auction house says interest in historical coins has grown in recent years. It plans to hold "
            "a special sale for collectors in December. Valuations are free on Tuesday mornings.",
        ],
        [("coins", "Old coins laid out on a table", "Part of the collection before the sale.")],
    ),
    (
        "motorcycle-show-weekend",
        "Classic motorcycle show fills the seafront",
        [
            "More than two hundred classic motorcycles lined the seafront on Sunday for the annual show. "
            "Owners travelled from across the country to display their machines. The oldest motorcycle on "
            "show was built in the nineteen twenties.",
            "Judges awarded the prize for the best restoration to a red touring bike that had been rescued "
            "from a barn. Its owner said the work took him four years of evenings and weekends. He plans to "
            "ride it to next year's show.",
            "Organisers said the event raised a large sum for the lifeboat station. The road along the "
            "seafront will be closed again for next year's show.",
        ],
        [("motorcycle_left", "A red motorcycle parked in a garage", "The winning restoration.")],
    ),
    (
        "library-renovation-complete",
        "Public library reopens after a year of renovation",
        [
            "The public library reopened on Monday after a renovation that lasted more than a year. The "
            "building now has a larger children's section, a quiet study room and a small cafe. Solar panels "
            "on the roof provide most of its electricity.",
            "Librarians said more than five hundred people visited on the first day. Many came to see the "
            "restored reading room with its original wooden shelves. The local history collection has moved "
            "to the first floor.",
            "Opening hours have been extended to eight o'clock on weekday evenings. Membership remains free "
            "for everyone who lives or works in the district.",
        ],
        [],
    ),
    (
        "harbour-cleanup-volunteers",
        "Volunteers remove two tonnes of rubbish from the harbour",
        [
            "Around one hundred and fifty volunteers spent Saturday morning collecting rubbish along the "
            "harbour walls and beaches. Divers from the sailing club searched the seabed near the jetty. "
            "Together they removed about two tonnes of waste.",
            "Most of the rubbish was plastic, including bottles, fishing lines and food packaging. The divers "
            "also recovered a bicycle, two shopping trolleys and an old anchor. The anchor will be cleaned "
            "and displayed at the harbour office.",
            "The organisers thanked the businesses that provided gloves, bags and lunch for the volunteers. "
            "The next clean-up is planned for the autumn.",
        ],
        [("moon", "The full moon over the harbour", "The moon rose as the volunteers finished.")],
    ),
    (
        "night-sky-festival",
        "Night sky festival invites families to look at the moon",
        [
            "The first night sky festival will take place on the hill above the town next weekend. Volunteers "
            "from the astronomy club will set up telescopes pointed at the moon and the planets. Street "
            "lights in the park will be switched off for the evening.",
            "Children can take part in a quiz about the solar system and build their own paper planisphere. "
            "Hot drinks will be sold by the scouts. Visitors are asked to bring a torch with a red light.",
            SYNDICATED,
        ],
        [("moon", "The full moon over the harbour", "The full moon seen from the hill.")],
    ),
]

NEWS += [
    (
        "photography-club-exhibition",
        "Photography club shows a century of street portraits",
        [
            "The Harbourtown photography club has opened an exhibition of black and white street portraits in "
            "the town hall foyer. The oldest photograph was taken on a glass plate more than a hundred years "
            "ago. Club members printed the newer pictures themselves in a shared darkroom.",
            "The curator said the exhibition shows how the faces and clothes of the town have changed. Many "
            "visitors have recognised relatives in the older pictures. The club is collecting their stories "
            "for a small book.",
            "The exhibition is open on weekdays until the end of the month. The club also runs a beginners' "
            "course on Thursday evenings, and cameras can be borrowed for the first few weeks.",
        ],
        [
            (
                "camera",
                "A photographer standing behind a camera on a tripod",
                "A portrait from the exhibition.",
            )
        ],
    ),
    (
        "old-mill-restoration",
        "Restoration of the old mill reaches the roof",
        [
            "Builders working on the old mill by the river have started to replace its roof. The brick walls "
            "were repaired over the winter using bricks recovered from a demolished barn. The work is being "
            "paid for by a heritage grant and local donations.",
            "The mill was built in the eighteenth century and ground flour for the town for almost two "
            "hundred years. It has stood empty since the nineteen sixties. Volunteers hope to turn the ground "
            "floor into a small museum and a cafe.",
            "The restoration trust will hold an open day in September. Visitors will be able to see the "
            "original millstones and the new water wheel. Guided tours start every hour from the car park.",
        ],
        [("brick", "A weathered brick wall", "The repaired brick wall of the mill.")],
    ),
    (
        "park-meadow-project",
        "Wildflower meadow returns to the town park",
        [
            "Part of the town park will no longer be mowed every week, so that a wildflower meadow can grow. "
            "Gardeners have sown seeds of native flowers along the lake. They say the meadow will attract "
            "bees, butterflies and birds.",
            "Some residents were unhappy at first and worried that the park would look untidy. The council "
            "has put up signs that explain the project. Paths through the meadow will still be cut regularly.",
            "Schools have been invited to count insects in the meadow during the summer term. The results "
            "will be compared with counts from the mowed lawns nearby. The first report is expected in the "
            "autumn.",
        ],
        [("grass", "Close-up of long grass", "The meadow in its first summer.")],
    ),
    (
        "school-science-fair",
        "Pupils build water filters for the school science fair",
        [
            "More than sixty pupils took part in the secondary school's science fair on Friday. The winning "
            "team built a water filter from sand, gravel and charcoal. Their filter removed almost all of the "
            "mud from a sample of river water.",
            "Other projects included a weather station, a solar oven and a study of how quickly different "
            "plastics break down. The judges were teachers and two engineers from the water company. They "
            "praised the careful notes that many pupils kept.",
            "The best three projects will go to the regional fair in the spring. The school hopes to take a "
            "bus of supporters along. Parents can see the projects in the school hall until Wednesday.",
        ],
        [],
    ),
    (
        "ferry-timetable-changes",
        "Island ferry adds evening crossings this summer",
        [
            "The ferry company will add two evening crossings to the island from the first week of June. The "
            "last boat will leave the harbour at half past nine. Islanders have asked for later crossings for "
            "many years.",
            "The company said more visitors are staying on the island for dinner and concerts. The new "
            "crossings will run every day until the middle of September. Tickets can be bought online or at "
            "the harbour office.",
            SYNDICATED,
        ],
        [],
    ),
    (
        "market-street-bakery",
        "Family bakery celebrates fifty years on Market Street",
        [
            "A family bakery on Market Street celebrated its fiftieth birthday on Saturday with free cake for "
            "every customer. The bakery was opened by a young couple who had just moved to the town. Their "
            "daughter and grandson now run it together.",
            "The shop still bakes its bread in the original brick oven at the back. Regular customers queued "
            "from early morning for the famous seed loaf. Some of them have bought their bread there for "
            "decades.",
            "The owners thanked the town for its loyalty and said they have no plans to retire. They will "
            "start selling coffee next month. A small photo exhibition in the window tells the story of the "
            "shop.",
        ],
        [("coffee", "A cup of coffee with latte art on a saucer", "Coffee will be on sale from next month.")],
    ),
]

GERMAN = (
    "stadtfest-am-hafen",
    "Stadtfest am Hafen zieht viele Besucher an",
    [
        "Am Wochenende kamen tausende Menschen zum Stadtfest an den Hafen. Auf drei Bühnen spielten Bands aus "
        "der ganzen Region. Die Veranstalter sprachen von einem großen Erfolg.",
        "Besonders beliebt waren die Stände mit frischem Fisch und die Bootsfahrten durch den Hafen. Am "
        "Abend gab es ein Feuerwerk über dem Wasser. Viele Familien blieben bis nach Mitternacht.",
        "Das nächste Stadtfest findet im kommenden Jahr wieder am zweiten Wochenende im Juni statt. Die "
        "Stadt sucht noch freiwillige Helfer für den Aufbau.",
    ],
)
FRENCH = (
    "marche-aux-fleurs",
    "Le marché aux fleurs revient sur la place centrale",
    [
        "Le marché aux fleurs revient sur la place centrale tous les samedis matin jusqu'à la fin de l'été. "
        "Une vingtaine de producteurs de la région y vendent des plantes et des bouquets. Les visiteurs "
        "peuvent aussi demander des conseils pour leur jardin.",
        "Les organisateurs espèrent attirer de nombreuses familles grâce aux ateliers pour les enfants. Une "
        "petite fanfare jouera pendant la matinée. L'entrée est libre pour tout le monde.",
        "La mairie rappelle que le stationnement sera interdit sur la place dès six heures du matin. Des "
        "navettes gratuites partiront de la gare toutes les vingt minutes.",
    ],
)

WIKI_ARTICLES = [
    (
        "Coffee",
        [
            "Coffee is a beverage brewed from roasted coffee beans, the seeds of berries from the Coffea plant. "
            "It is one of the most popular drinks in the world.[1] Coffee is usually served hot, although "
            "chilled or iced coffee is common.",
            "The earliest credible evidence of coffee drinking appears in the fifteenth century in the Sufi "
            "shrines of Yemen.[2] From there it spread to Egypt and North Africa. By the sixteenth century it "
            "had reached the rest of the Middle East, Persia and Turkey.",
            "Coffee plants are cultivated in more than seventy countries, mainly in the equatorial regions of "
            "the Americas, Southeast Asia, India and Africa. The two most commonly grown species are arabica "
            "and robusta. Once ripe, the berries are picked, processed and dried.",
            "Coffee has a stimulating effect on humans, primarily due to its caffeine content.[3] Moderate "
            "consumption is not associated with harm in healthy adults. It is a major export commodity for "
            "many developing countries.",
        ],
        [("coffee", "A cup of coffee with latte art", "A cup of coffee.")],
    ),
    (
        "Moon",
        [
            "The Moon is Earth's only natural satellite. It orbits at an average distance of about three "
            "hundred and eighty-four thousand kilometres. It is the fifth largest satellite in the Solar "
            "System.[1]",
            "The Moon is thought to have formed about four and a half billion years ago, not long after Earth. "
            "The most widely accepted explanation is that it formed from the debris left over after a giant "
            "impact between Earth and a Mars-sized body.[2]",
            "The Moon is tidally locked to Earth, so the same side always faces the planet. Its surface is "
            "covered in craters, mountains and dark plains of ancient lava called maria. The Moon has a thin "
            "exosphere but no substantial atmosphere.",
            "The Moon was first reached by a spacecraft in 1959. The first crewed landing took place in 1969, "
            "and twelve astronauts walked on its surface between 1969 and 1972.[3]",
        ],
        [("moon", "The full Moon as seen from Earth", "The full Moon.")],
    ),
    (
        "Domestic cat",
        [
            "The cat is a small domesticated carnivorous mammal. It is the only domesticated species in the "
            "family Felidae.[1] Cats are commonly kept as house pets but can also be farm cats or feral cats.",
            "Cats are valued by humans for companionship and their ability to kill vermin. They have a strong "
            "flexible body, quick reflexes, sharp teeth and retractable claws. Their night vision and sense of "
            "smell are well developed.",
            "Cat communication includes vocalizations such as meowing, purring, hissing and growling, as well "
            "as body language. Cats are social animals that can live in colonies. They groom themselves for "
            "several hours every day.[2]",
        ],
        [("chelsea", "A tabby cat", "A domestic tabby cat.")],
    ),
    (
        "Rocket",
        [
            "A rocket is a vehicle that uses jet propulsion to accelerate without using the surrounding air. "
            "Rocket engines work by action and reaction, pushing rockets forward by expelling exhaust in the "
            "opposite direction at high speed.[1]",
            "Rockets carry all of their propellant with them, so they can work in the vacuum of space. "
            "Military and recreational uses of rockets date back to at least thirteenth century China. "
            "Significant scientific, interplanetary and industrial use did not occur until the twentieth "
            "century.",
            "Rockets are used for fireworks, missiles and other weapons, ejection seats and launch vehicles "
            "for artificial satellites. Chemical rockets are the most common type of high power rocket.[2]",
        ],
        [("rocket", "A rocket on a launch pad", "A launch vehicle before lift-off.")],
    ),
    (
        "Retina",
        [
            "The retina is the innermost light-sensitive layer of tissue of the eye of most vertebrates. The "
            "optics of the eye create a focused image of the visual world on the retina.[1] It serves a "
            "function analogous to that of the film or image sensor in a camera.",
            "Light striking the retina initiates a cascade of chemical and electrical events. These events "
            "ultimately trigger nerve impulses that are sent to the visual centres of the brain through the "
            "fibres of the optic nerve.",
            "Doctors examine the retina with an ophthalmoscope or with retinal photography. Changes in the "
            "retina can reveal diseases such as diabetes and high blood pressure. Early detection helps to "
            "prevent loss of vision.[2]",
        ],
        [("retina", "A photograph of a human retina", "Fundus photograph of a human retina.")],
    ),
    (
        "Coin",
        [
            "A coin is a small, flat, round piece of metal or plastic used primarily as a medium of exchange "
            "or legal tender. Coins are standardized in weight and produced in large quantities at a mint.[1] "
            "They are usually issued by a government.",
            "The first coins were developed independently in Iron Age Anatolia and Archaic Greece, India and "
            "China around the sixth century BC. Coins spread rapidly in the following centuries.[2]",
            "Today, coins and banknotes make up the cash forms of currency. Coin collecting is a popular hobby, "
            "and rare coins can be worth much more than their face value. Collectors value coins by their "
            "age, rarity and condition.",
            SYNDICATED,
        ],
        [
            ("coins", "Coins on a table", "A group of coins."),
            ("logo", "A project logo", "A logo with transparency."),
        ],
    ),
    (
        "Lighthouse",
        [
            "A lighthouse is a tower, building or other structure designed to emit light from a system of "
            "lamps and lenses. It serves as a navigational aid for maritime pilots at sea or on inland "
            "waterways.[1]",
            "Lighthouses mark dangerous coastlines, hazardous shoals, reefs and safe entries to harbours. They "
            "can also assist in aerial navigation. Once widely used, the number of operational lighthouses has "
            "declined because of the expense of maintenance and the rise of electronic navigation systems.",
            "Most modern lighthouses are automated and no longer have resident keepers. Many old lighthouses "
            "have been turned into museums or holiday homes.[2]",
        ],
        [],
    ),
    (
        "Harbour",
        [
            "A harbour is a sheltered body of water where ships, boats and barges can be moored. The term is "
            "often used interchangeably with port, which is a man-made facility built for loading and "
            "unloading vessels.[1]",
            "Harbours can be natural or artificial. An artificial harbour can have deliberately constructed "
            "breakwaters, sea walls or jetties. A natural harbour is a landform where a section of a body of "
            "water is protected and deep enough to allow anchorage.",
            "Many of the world's great cities grew around natural harbours. Harbours remain important for "
            "fishing, trade and recreation, and some host ferries to nearby islands.[2]",
        ],
        [("moon", "The full Moon above a harbour", "Moonrise over a harbour.")],
    ),
]


def jpeg(name: str, max_side: int = 320) -> bytes:
    """A scikit-image sample photo, downscaled and JPEG-encoded (PNG for the logo with alpha)."""
    import skimage.data

    array = (
        skimage.data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(skimage.data, name)()
    )
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    image = Image.fromarray(array)
    scale = max_side / max(image.size)
    if scale < 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
    out = io.BytesIO()
    if image.mode == "RGBA":
        image.save(out, format="PNG", optimize=True)
    else:
        image.convert("RGB").save(out, format="JPEG", quality=80, optimize=True)
    return out.getvalue()


def tiny_png_data_uri() -> str:
    y, x = np.mgrid[0:64, 0:64]
    pixels = np.stack([x * 4, y * 4, (x * 7) ^ (y * 13)], axis=-1).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")  # a colour pattern: a real inline image, not a 1x1 placeholder
    out = io.BytesIO()
    image.save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def figure(src: str, alt: str, caption: str) -> str:
    return (
        f'<figure class="article-image"><img src="{html.escape(src)}" alt="{html.escape(alt)}" width="640">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def news_page(slug: str, title: str, paragraphs: list[str], photos: list, variant: int = 0) -> str:
    """A news page with realistic boilerplate around the article."""
    figures = "".join(figure(PHOTOS[name] if name in PHOTOS else name, alt, cap) for name, alt, cap in photos)
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    related = "".join(f'<li><a href="{SITE}/news/{s}">{html.escape(t)}</a></li>' for s, t, _, _ in NEWS[:4])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} | Harbourtown Herald</title>
<meta property="og:title" content="{html.escape(title)}"><meta property="og:type" content="article">
<meta name="twitter:card" content="summary_large_image">
<link rel="stylesheet" href="/static/site.css"><script src="/static/analytics.js"></script>
<script>window.dataLayer = window.dataLayer || []; function gtag(){{dataLayer.push(arguments);}}</script>
<style>.cookie-banner{{position:fixed;bottom:0}}</style></head>
<body class="article-page">
<div id="cookie-consent" class="cookie-banner">This website uses cookies to improve your experience.
By continuing to browse you agree to our cookie policy. <button>Accept all</button></div>
<header class="site-header"><div class="logo"><a href="/">Harbourtown Herald</a></div>
<nav class="main-nav"><ul><li><a href="/news">News</a></li><li><a href="/sport">Sport</a></li>
<li><a href="/culture">Culture</a></li><li><a href="/weather">Weather</a></li><li><a href="/subscribe">Subscribe</a></li></ul></nav>
</header>
<main><div class="container"><div class="row"><div class="col-main">
<article itemscope itemtype="https://schema.org/NewsArticle">
<h1 itemprop="headline">{html.escape(title)}</h1>
<div class="byline">By the Herald news desk, updated {"14" if variant == 0 else "15"} May 2024</div>
{figures}
<div itemprop="articleBody">{body}</div>
<div class="share-buttons"><a href="#">Share</a> <a href="#">Tweet</a> <a href="#">Email</a></div>
</article></div>
<aside class="sidebar"><h3>Most read</h3><ul>{related}</ul>
<div class="newsletter"><form><input type="email" placeholder="Your email"><button>Sign up</button></form></div></aside>
</div></div></main>
<footer class="site-footer"><p>Copyright 2024 Harbourtown Herald. All rights reserved.</p>
<p><a href="/privacy">Privacy policy</a> | <a href="/terms">Terms of use</a> | <a href="/contact">Contact us</a></p></footer>
</body></html>
"""


def wiki_html(title: str, paragraphs: list[str], photos: list) -> str:
    """Parsoid-like article HTML as found in Wikimedia Enterprise dumps (protocol-relative image URLs)."""
    sections = []
    for i, paragraph in enumerate(paragraphs):
        sections.append(f'<section data-mw-section-id="{i}"><p id="mw{i:02d}">{html.escape(paragraph)}</p>')
        if i < len(photos):
            name, alt, caption = photos[i]
            src = PHOTOS[name].replace("https:", "")
            sections.append(
                f'<figure typeof="mw:File/Thumb"><a href="./File:{name}.jpg" class="mw-file-description">'
                f'<img src="{src}" alt="{html.escape(alt)}" resource="./File:{name}.jpg" '
                f'data-file-width="320" data-file-height="240" class="mw-file-element"></a>'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        sections.append("</section>")
    navbox = (
        '<div role="navigation" class="navbox"><table><tr><th>See also</th><td><a href="./Portal:Science">'
        'Science portal</a> · <a href="./Outline">Outline</a></td></tr></table></div>'
    )
    return (
        f'<!DOCTYPE html><html prefix="dc: http://purl.org/dc/terms/" about="{WIKI}/{title.replace(" ", "_")}">'
        f'<head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<link rel="dc:isVersionOf" href="{WIKI}/{title.replace(" ", "_")}"></head>'
        f'<body lang="en" class="mw-content-ltr mw-parser-output">{"".join(sections)}{navbox}</body></html>'
    )


def http_response(body: bytes, content_type: str) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Date: Tue, 14 May 2024 09:30:00 GMT\r\n"
        "Server: nginx\r\n\r\n"
    )
    return head.encode("latin-1") + body


def warc_record(
    url: str, block: bytes, warc_type: str = "response", content_type: str | None = None
) -> bytes:
    """One gzip member holding one WARC/1.0 record (deterministic id, date and gzip header)."""
    content_type = content_type or "application/http; msgtype=response"
    record_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{warc_type}:{url}:{len(block)}")
    head = (
        "WARC/1.0\r\n"
        f"WARC-Type: {warc_type}\r\n"
        f"WARC-Record-ID: <urn:uuid:{record_id}>\r\n"
        f"WARC-Date: {DATE}\r\n"
        f"WARC-Target-URI: {url}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(block)}\r\n\r\n"
    )
    return gzip.compress(head.encode("utf-8") + block + b"\r\n\r\n", mtime=0)


def build_warc() -> bytes:
    records = [
        warc_record(
            "urn:warcinfo",
            b"software: cm3-data make_sample_corpus\r\nformat: WARC File Format 1.0\r\n",
            "warcinfo",
            "application/warc-fields",
        )
    ]

    def page(url: str, text: str, charset: str = "utf-8") -> None:
        body = edition(text).encode(charset)
        records.append(warc_record(url, http_response(body, f"text/html; charset={charset}")))

    for slug, title, paragraphs, photos in NEWS:
        page(f"{SITE}/news/{slug}", news_page(slug, title, paragraphs, photos))
    # the same URL crawled again a day later (different byline): URL dedup keeps one
    slug, title, paragraphs, photos = NEWS[3]
    page(f"{SITE}/news/{slug}", news_page(slug, title, paragraphs, photos, variant=1))
    # a page with an inline data: URI image and a broken image record
    page(
        f"{SITE}/news/reader-photos",
        news_page(
            "reader-photos",
            "Readers send in their photos of the spring tide",
            [
                "Dozens of readers sent us photos of the unusually high spring tide that flooded the promenade "
                "on Monday night. Water reached the steps of the old customs house. Nobody was hurt, but "
                "several cellars were flooded.",
                "The coastguard says tides this high occur only a few times a year, when strong winds push "
                "water into the bay. Residents of the lower streets were advised to move cars to higher "
                "ground. Sandbags are available from the fire station.",
                "We will publish a selection of the best photos in Saturday's print edition. Readers can keep "
                "sending pictures through our website. Please include your name and where the photo was "
                "taken.",
            ],
            [
                (tiny_png_data_uri(), "A colour pattern sent by a reader", "A reader's test image."),
                (BROKEN_IMAGE, "A photo that was damaged during upload", "This upload was damaged."),
            ],
        ),
    )
    # non-English, lorem ipsum, stub, code and windows-1252 pages
    for slug, title, paragraphs in (GERMAN, FRENCH):
        page(f"{SITE}/international/{slug}", news_page(slug, title, paragraphs, []))
    page(
        f"{SITE}/drafts/template",
        news_page(
            "template",
            "Template article",
            [
                "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt. "
                "Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris. Duis aute irure dolor in "
                "reprehenderit in voluptate velit esse.",
            ]
            * 3,
            [],
        ),
    )
    page(
        f"{SITE}/news/missing",
        news_page("missing", "Page not found", ["Sorry, this page could not be found."], []),
    )
    page(
        f"{SITE}/news/tide-tables",
        news_page(
            "tide-tables",
            "Tide tables for the coming week",
            [
                "The tide tables below are updated every Monday morning by the harbour office. High water at "
                "the main quay is expected at six in the morning on Tuesday. Please note that times are given "
                "in local summer time.",
                "Boat owners should allow for strong currents near the harbour entrance during spring tides. "
                "The harbour master can be contacted on channel twelve. Moorings are checked every evening "
                "by the night watch.",
                "Anglers are reminded that fishing from the north pier is not allowed between May and July. "
                "Nesting birds use the rocks below the pier during these months. Fines are issued by the "
                "harbour wardens.",
            ],
            [],
        ).replace(
            "</body>", "<p>Café owners on the quay say the “tide walks” are popular with visitors.</p></body>"
        ),
        charset="windows-1252",
    )
    records.append(
        warc_record(
            f"{SITE}/downloads/archive.bin",
            http_response(b"\x89PNG\r\n\x1a\n" + b"\x00\x10\xa7" * 900, "text/html"),  # mislabelled binary
        )
    )
    for name, url in PHOTOS.items():
        content_type = "image/png" if url.endswith(".png") else "image/jpeg"
        records.append(warc_record(url, http_response(jpeg(name), content_type)))
    damaged = jpeg("coffee")[:600]
    records.append(warc_record(BROKEN_IMAGE, http_response(damaged, "image/jpeg")))
    return b"".join(records)


def build_wikipedia_dump() -> bytes:
    lines = []
    for index, (title, paragraphs, photos) in enumerate(WIKI_ARTICLES):
        url = f"{WIKI}/{title.replace(' ', '_')}"
        article = {
            "name": title,
            "identifier": 1000 + index,
            "date_modified": "2024-05-01T12:00:00Z",
            "version": {"identifier": 5000 + index},
            "url": url,
            "in_language": {"identifier": "en"},
            "is_part_of": {"identifier": "enwiki"},
            "license": [{"name": "Creative Commons Attribution Share Alike 3.0 Unported"}],
            "article_body": {"html": edition(wiki_html(title, paragraphs, photos)), "wikitext": ""},
        }
        lines.append(json.dumps(article, ensure_ascii=False, sort_keys=True))
    lines.append('{"name": "Broken line", "url": ')  # a truncated NDJSON line: counted, skipped
    payload = ("\n".join(lines) + "\n").encode("utf-8")
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("enwiki_namespace_0_0.ndjson")
        info.size, info.mtime, info.mode = len(payload), 0, 0o644
        tar.addfile(info, io.BytesIO(payload))
    return gzip.compress(tar_bytes.getvalue(), mtime=0)


def corpus_copy(index: int) -> tuple[bytes, bytes]:
    """(WARC, dump) of the same corpus under other host names and with every sentence changed ("..., edition
    N."), so copies are distinct pages, images and prose: for benchmarks, a bigger corpus with the same mix
    whose copies span dedup does not remove."""
    global SITE, IMG, WIKI, UPLOAD, PHOTOS, BROKEN_IMAGE, EDITION
    saved = (SITE, IMG, WIKI, UPLOAD, PHOTOS, BROKEN_IMAGE, EDITION)
    rename = {
        "harbourtown-herald.example": f"copy{index}.herald.example",
        "wikipedia.org": f"copy{index}.wiki.example",
    }

    def moved(url: str) -> str:
        for old, new in rename.items():
            url = url.replace(old, new)
        return url

    try:
        SITE, IMG, WIKI, UPLOAD, BROKEN_IMAGE = map(moved, (SITE, IMG, WIKI, UPLOAD, BROKEN_IMAGE))
        PHOTOS = {name: moved(url) for name, url in PHOTOS.items()}
        EDITION = index
        return build_warc(), build_wikipedia_dump()
    finally:
        SITE, IMG, WIKI, UPLOAD, PHOTOS, BROKEN_IMAGE, EDITION = saved


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "news.warc.gz").write_bytes(build_warc())
    (OUT / "enwiki-sample.ndjson.tar.gz").write_bytes(build_wikipedia_dump())
    for path in sorted(OUT.iterdir()):
        print(f"{path}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
