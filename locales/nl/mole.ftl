# De woorden van mole voor de pagina's van de persoon, in het Nederlands (vertaald uit ../en/mole.ftl, dat leidend is).

## Elke pagina (templates/base.html)
site-title = mole — een huidplekje laten nakijken
site-tagline = · controle van een huidplekje
nav-my-cases = Mijn controles
footer-not-a-device = mole is een onderzoeksdemonstratie, geen medisch hulpmiddel en geen medische diagnose.
footer-see-a-doctor = Alleen een arts kan een huidplekje onderzoeken. Als een moedervlek verandert, bloedt, jeukt of u zorgen baart, ga dan naar een arts, wat deze pagina ook zegt.
footer-model-link = Hoe goed het model is, en waarop het getraind is
language-switch = Taal

## De uploadpagina (templates/index.html, static/upload.js)
upload-title = Een moedervlek laten nakijken
upload-intro = Maak een scherpe close-up van één moedervlek bij goed licht en verstuur die. De analyse duurt meestal een paar seconden.
upload-deleted = De controle en de foto zijn verwijderd.
upload-label = Kies of maak een foto
upload-hint = Op een telefoon kunt u nu een foto maken of er een uit uw galerij kiezen; op een computer kunt u hem ook hierheen slepen. JPEG, PNG of WebP, tot { $limit }. Locatie en andere metadata worden uit de foto verwijderd.
upload-preview-alt = De foto die u koos
upload-submit = Analyseer de foto
upload-use-this = Deze foto gebruiken
upload-choose-another = Een andere foto kiezen
upload-sending = Versturen…
upload-not-a-diagnosis = Dit is geen medische diagnose.
upload-notice = Het resultaat is een schatting van een computermodel dat getraind is op dermatoscoopbeelden; het kan zich vergissen. Laat elke moedervlek waarover u zich zorgen maakt door een arts bekijken.
check-heic = HEIC-foto's kunnen niet gelezen worden. Stuur een JPEG: kies op een iPhone „Meest compatibel” onder Instellingen › Camera › Formaten, of maak de foto vanaf deze pagina.
check-type = Dit bestand is geen foto die mole kan lezen ({ $type }). Kies een JPEG-, PNG- of WebP-foto.
check-size = Deze foto is { $size } MB; het grootste toegestane bestand is { $limit }.
check-empty = Dit bestand is leeg. Kies een andere foto.
check-choose-first = Kies eerst een foto.
check-no-drop = Deze browser kan geen gesleept bestand aannemen; gebruik de knop.

## De pagina van de controle (templates/case.html, case_panel.html, photo_map.html, history.html)
case-title = Uw controle — mole
result-title = Resultaat
verdict-see-a-doctor = Laat deze moedervlek aan een arts zien.
verdict-looks-benign = Deze moedervlek ziet er goedaardig uit, maar controleer hem opnieuw als hij verandert.
result-p-malignant = Geschatte kans dat het plekje kwaadaardig is: { $percent }.
result-threshold = Het advies is naar een arts te gaan vanaf { $threshold }: bewust laag gekozen, zodat weinig kwaadaardige plekjes gemist worden
result-how-well = Hoe goed het model is
result-chart-title = De zeven diagnoses die het model kent
tag-malignant = kwaadaardig
result-sent = Foto verstuurd op { $date }.
advice-doctor-title = Wat u nu doet
advice-doctor-when = Maak binnen ongeveer twee weken een afspraak met uw huisarts of een dermatoloog, en laat dit plekje zien.
advice-doctor-sooner = Ga eerder, binnen enkele dagen, als het bloedt, snel groeit of de laatste weken veranderd is.
advice-doctor-bring = Neem dit resultaat mee: druk het af of bewaar het als pdf met de knop hieronder. De meeste plekjes die een arts bekijkt blijken onschuldig; deze controle stuurt liever naar een arts dan dat ze een kanker mist.
advice-benign-title = Waar u op let
advice-benign-when = Bekijk het plekje opnieuw over ongeveer drie maanden (een foto bij hetzelfde licht helpt om te vergelijken), en ga eerder naar een arts als u een van de ABCDE-tekens ziet:
abcde-a = Asymmetrie: de twee helften zijn niet gelijk.
abcde-b = Begrenzing: rafelige, gekartelde of vage randen.
abcde-c = Colour (kleur): meerdere tinten, of zwarte, blauwe, rode of witte delen.
abcde-d = Diameter: groter dan ongeveer 6 mm (een gum op een potlood).
abcde-e = Evolutie: het verandert van grootte, vorm of kleur, of gaat jeuken, korsten of bloeden.
result-not-a-diagnosis = Dit is geen medische diagnose.
result-notice = Het is de schatting van een computermodel en kan zich in beide richtingen vergissen. Laat elke moedervlek die verandert, bloedt, jeukt of u zorgen baart aan een arts zien.
action-check-another = Nog een foto laten nakijken
action-print = Afdrukken of als pdf bewaren
action-my-cases = Mijn controles
technical-title = Technische details
technical-model = Model
technical-case = Controle
technical-queue = Tijd in de wachtrij
technical-inference = Tijd in het model
technical-batch = { $wait } (één doorgang voor { $n } foto's)
technical-not-recorded = niet vastgelegd
refused-title = Het model kan deze foto niet beoordelen
refused-how-title = Zo maakt u een foto die het kan beoordelen
refused-tip-frame = Alleen het plekje en de huid eromheen, en die vullen het grootste deel van de foto.
refused-tip-light = Gelijkmatig daglicht, geen flits, geen schaduw over het plekje.
refused-tip-sharp = Scherp: houd stil, op ongeveer 10 cm, en tik op het plekje om scherp te stellen.
refused-no-diagnosis = Uit deze foto is geen diagnose gesteld. Als het plekje u zorgen baart, laat het dan aan een arts zien, wat deze pagina ook zegt.
action-send-another = Een andere foto versturen
failed-title = De foto kon niet geanalyseerd worden
action-try-another = Probeer een andere foto
waiting-title = Uw foto wordt geanalyseerd
waiting-updates = Deze pagina werkt zichzelf bij; u hoeft niet te herladen.
status-queued = Wachten op het model…
status-processing = De foto wordt geanalyseerd…
status-done = Analyse klaar.
status-failed = De foto kon niet geanalyseerd worden.
status-refused = Het model kan deze foto niet beoordelen.
status-deleted = Deze controle is verwijderd.
refusal-too-small = Deze foto is te klein om de huid in genoeg detail te zien.
refusal-too-dark = Deze foto is te donker om de huid te zien.
refusal-overexposed = Deze foto is te licht: de huid is overbelicht.
refusal-too-blurry = Deze foto is te wazig om de randen en het patroon van het plekje te zien.
refusal-not-a-lesion = Dit lijkt geen close-up van een huidplekje, dus het model kan het niet beoordelen.
refusal-unknown = Het model kon deze foto niet beoordelen.
advice-too-small = Stuur de foto op ware grootte (minstens een paar honderd pixels per zijde), geen miniatuur.
advice-too-dark = Maak de foto bij daglicht of goed binnenlicht; vermijd uw eigen schaduw over het plekje.
advice-overexposed = Zet de flits uit en ga uit de directe zon; laat de camera de belichting kiezen.
advice-too-blurry = Houd de camera stil op ongeveer 10 cm van de huid en tik op het scherm op het plekje om scherp te stellen voordat u de foto maakt.
advice-not-a-lesion = Fotografeer alleen het plekje op de huid: laat het het grootste deel van de foto vullen, scherp en bij gelijkmatig licht, met niets anders in beeld.
advice-unknown = Maak een scherpe, goed belichte close-up van alleen het plekje en stuur die opnieuw.
yours-title = Uw foto
yours-alt = De foto die u verstuurde
delete-button = Deze controle en de foto verwijderen
delete-confirm = Deze controle en de foto voorgoed verwijderen?
map-label = Occlusiekaart: welke delen van de foto de schatting veranderden
map-legend-title = Waar het model naar keek.
map-legend = Het vierkant is wat het model zag. Elk vakje werd om de beurt bedekt: rode vakjes zijn plaatsen waar het bedekken van de huid de geschatte kans op kwaadaardigheid verlaagde (het model zag daar waarschuwingstekens), blauwe waar het die verhoogde. Hoe sterker de kleur, hoe groter de verandering (hier hoogstens { $largest }). Het toont waar het model keek, niet waarom, en is geen medische bevinding.
map-key-red = rode
map-key-blue = blauwe
limits-title = Wat deze controle wel en niet kan
limits-not-a-device = Het is geen medisch hulpmiddel en geen diagnose: het is de schatting van een computermodel, die zich in beide richtingen kan vergissen.
limits-training = Het leerde van ongeveer 10.000 dermatoscoopfoto's (close-ups door een huidvergrootglas) van vooral lichte huid. Telefoonfoto's en donkerdere huid lijken minder op wat het leerde, dus daarop is het minder betrouwbaar.
limits-operating-point = Op de testfoto's stuurde het van elke 100 plekjes die kanker waren er ongeveer { $caught } naar een arts en miste het er ongeveer { $missed }; van elke 100 onschuldige noemde het er ongeveer { $cleared } goedaardig en stuurde het er ongeveer { $sent } onnodig naar een arts.
limits-see-a-doctor = Ga naar een arts met elk plekje dat nieuw is, verandert, bloedt, jeukt of u zorgen baart, wat deze pagina ook zegt.
limits-model = Model { $version }
limits-model-link = hoe het gebouwd en gemeten is
history-title = Wat er met deze controle gebeurde
history-created-you = U verstuurde de foto.
history-created = De foto werd verstuurd.
history-queued = Hij kwam in de wachtrij voor analyse.
history-requeued = Hij werd na een onderbreking opnieuw in de wachtrij gezet; er ging niets verloren.
history-started = Het model begon aan de analyse.
history-retrying = Een tijdelijk probleem onderbrak de analyse; die wordt opnieuw geprobeerd.
history-completed = Het model analyseerde hem.
history-failed = Hij kon niet geanalyseerd worden.
history-refused = Het model stelde vast dat het deze foto niet kan beoordelen.
history-explained = Het model gaf aan welke delen van de foto voor hem telden.
history-viewed-you = U bekeek hem.
history-viewed-visitor = Iemand met de link bekeek hem.
history-viewed-staff = Medewerkers van de kliniek bekeken hem.
history-viewed = Hij werd bekeken.
history-reviewed = Een arts heeft hem beoordeeld.
history-deleted-you = U verwijderde hem.
history-deleted = Hij werd verwijderd.

## Het wachten (crates/web/src/wait.rs)
wait-delayed = De analyse is vertraagd: het deel van mole dat foto's analyseert draait op dit moment niet. Uw foto is veilig bewaard en wordt geanalyseerd zodra het terug is. Deze pagina blijft wachten; u kunt haar ook sluiten en de controle later terugvinden onder „Mijn controles”.
wait-processing = Het model analyseert uw foto nu.
wait-ahead = { $n ->
    [0] Uw foto is de volgende in de wachtrij.
    [one] Er is 1 foto voor de uwe in de wachtrij.
   *[other] Er zijn { $n } foto's voor de uwe in de wachtrij.
}
wait-expected = Verwacht over { $wait }.
wait-slow = Het duurt langer dan gewoonlijk; uw foto is veilig en deze pagina blijft wachten.
wait-few-seconds = een paar seconden
wait-seconds = ongeveer { $n } seconden
wait-minutes = ongeveer { $n } minuten

## Mijn controles (templates/my_cases.html)
mine-title = Mijn controles
mine-intro = De foto's die vanuit deze browser verstuurd zijn, de nieuwste eerst. Alleen deze browser ziet deze lijst: ze wordt bewaard met een cookie, dus een andere browser of een ander toestel heeft een eigen lijst, en wie de cookies van deze browser wist, verliest haar (de links naar de controles blijven werken).
mine-none-yet = Er zijn nog geen foto's vanuit deze browser verstuurd, of ze zijn verwijderd.
mine-no-cookie = Deze browser heeft nog geen foto verstuurd.
mine-sent = verstuurd op { $date }
mine-delete = Verwijderen
mine-delete-label = De controle van { $date } en de foto verwijderen
mine-truncated = Alleen de nieuwste { $n } worden getoond.
mine-check = Een foto laten nakijken
outcome-see-a-doctor = Naar een arts ({ $percent } geschatte kans op kwaadaardig)
outcome-looks-benign = Lijkt goedaardig ({ $percent } geschatte kans op kwaadaardig)
outcome-refused = Het model kon deze foto niet beoordelen
outcome-failed = De foto kon niet geanalyseerd worden
outcome-waiting = Wacht op de analyse

## Fouten (templates/error.html)
error-reference = Als dit opnieuw gebeurt, vermeld dan deze referentie:

## Diagnoses (per HAM10000-code)
dx-akiec = Actinische keratose / intra-epitheliaal carcinoom (ziekte van Bowen)
dx-bcc = Basaalcelcarcinoom
dx-bkl = Goedaardige keratose-achtige afwijking
dx-df = Dermatofibroom
dx-mel = Melanoom
dx-nv = Melanocytaire naevus (moedervlek)
dx-vasc = Vasculaire afwijking

## Foutmeldingen (crates/web/src/error.rs, per code) en paginatitels (per HTTP-status)
error-not-found = Deze pagina of controle bestaat niet. Controleer de link.
error-deleted = Deze controle is verwijderd; de foto en het resultaat zijn weg.
error-forbidden = Alleen wie de foto verstuurde kan dit doen.
error-overloaded = De dienst is druk bezet; probeer het zo meteen opnieuw.
error-unavailable = De dienst is even niet beschikbaar; probeer het binnenkort opnieuw.
error-internal-error = Er ging aan onze kant iets mis.
error-no-photo = Er is geen foto verstuurd: kies of maak eerst een foto.
error-malformed-upload = De upload kon niet gelezen worden; stuur de foto opnieuw.
error-file-too-large = Het bestand is groter dan { $limit }.
error-image-too-small = De afbeelding is { $width }×{ $height } pixels; er zijn er minstens { $min }×{ $min } nodig om een moedervlek te zien.
error-empty-file = Het bestand is leeg.
error-not-an-image = Het bestand is geen afbeelding (verwacht: een JPEG-, PNG- of WebP-foto).
error-unsupported-format = { $format }-afbeeldingen kunnen niet gelezen worden: stuur de foto als JPEG (PNG en WebP werken ook).
error-truncated-image = De { $format }-afbeelding is afgebroken: het bestand stopt voor het einde van de afbeelding.
error-corrupt-image = De { $format }-afbeelding kon niet gedecodeerd worden; het bestand is misschien beschadigd.
error-image-too-large = De afbeelding is te groot: ze heeft meer pixels dan mole aanneemt. Stuur een kleinere foto.
http-400 = Het verzoek kon niet gelezen worden
http-403 = Niet toegestaan
http-404 = Niet gevonden
http-408 = Te traag
http-410 = Verwijderd
http-413 = Bestand te groot
http-415 = Geen foto die mole kan lezen
http-422 = Foto niet aanvaard
http-429 = Druk bezet
http-500 = Er ging iets mis
http-503 = Even niet beschikbaar
error-back = Nog een foto laten nakijken

## De modelpagina (templates/model.html)
model-page-title = Het model — mole
model-title = Het model achter mole
model-runs = mole gebruikt { $version }.
model-intro = Het is een convolutioneel netwerk ({ $architecture }) getraind op { $data }. Het bekijkt de foto verkleind tot { $size }×{ $size } pixels en schat de kans op elk van de zeven diagnoses hieronder. Als de diagnoses die als kwaadaardig tellen samen { $threshold } of meer halen, is het oordeel „naar een arts”.
model-notice-title = Geen medisch hulpmiddel.
model-notice = De cijfers hieronder komen van dermatoscoopbeelden uit klinieken; een telefoonfoto van uw huid is een ander soort beeld, en het model kan het daarop slechter doen.
model-how-well = Hoe goed het is
model-measured = Gemeten door de eigen evaluator van het project (mole eval, met precies de voorbewerking van de dienst en de { $backend }-backend) op { $n } beelden van { $set } die het model bij de training nooit zag. Geëvalueerd op { $date }.
model-measured-tta = Gemeten door de eigen evaluator van het project (mole eval, met precies de voorbewerking van de dienst en de { $backend }-backend, met augmentatie bij het testen) op { $n } beelden van { $set } die het model bij de training nooit zag. Geëvalueerd op { $date }.
model-sensitivity = Kwaadaardige plekjes gevonden (sensitiviteit)
model-missed = { $n } gemist
model-specificity = Goedaardige plekjes goedaardig genoemd (specificiteit)
model-auc = ROC-AUC kwaadaardig tegen goedaardig
model-balanced-accuracy = Gebalanceerde nauwkeurigheid (7 diagnoses)
model-accuracy = Nauwkeurigheid
model-macro-auc = Macro-ROC-AUC
model-ece = Kalibratiefout (ECE)
model-ece-value = { $value } procentpunt
model-per-class = Per diagnose
model-col-diagnosis = Diagnose
model-col-recall = Gevonden (recall)
model-col-precision = Precisie
model-col-images = Beelden
model-not-evaluated = niet in de geëvalueerde set
model-full-report = Het volledige rapport
model-report = { $link }: verwarringsmatrix, ROC-curven, betrouwbaarheidsdiagram, klassenverdeling en de meest zekere vergissingen (in het Engels).
model-no-report = Er is geen evaluatierapport van dit model geïnstalleerd. Draai mole eval op een gelabelde set om er een te maken.
model-origin = Waar het vandaan komt
model-training-data = Trainingsdata
model-licence = Licentie van de data
model-citation = Bronvermelding
model-calibration = Kalibratie
model-temperature = softmax-temperatuur { $value }
model-card = Modelkaart
model-check = Een foto laten nakijken
