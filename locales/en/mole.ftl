# mole's words for the person's pages, in English (the source language). Every id here is also in
# ../fr/mole.ftl and ../nl/mole.ftl (a test keeps them in step). Plain text only: the templates
# hold the markup.

## Every page (templates/base.html)
site-title = mole — check a skin lesion
site-tagline = · skin-lesion check
nav-my-cases = My cases
footer-not-a-device = mole is a research demonstration, not a medical device and not a medical diagnosis.
footer-see-a-doctor = Only a doctor can examine a skin lesion. If a mole changes, bleeds, itches or worries you, see a doctor, whatever this page says.
footer-model-link = How well the model does, and what it was trained on
language-switch = Language

## The upload page (templates/index.html, static/upload.js)
upload-title = Check a mole
upload-intro = Take a sharp, close-up photo of one mole in good light, then send it. The analysis usually takes a few seconds.
upload-deleted = The case and its photo were deleted.
upload-label = Choose or take a photo
upload-hint = On a phone you can take the photo now or pick one from your gallery; on a computer you can also drop it here. JPEG, PNG or WebP, up to { $limit }. Location and other metadata are removed from the photo.
upload-preview-alt = The photo you chose
upload-submit = Analyse the photo
upload-use-this = Use this photo
upload-choose-another = Choose another photo
upload-sending = Sending…
upload-not-a-diagnosis = This is not a medical diagnosis.
upload-notice = The result is an estimate by a computer model trained on dermatoscope images; it can be wrong. See a doctor about any mole that worries you.
check-heic = HEIC photos cannot be read. Send a JPEG: on an iPhone, choose “Most Compatible” under Settings › Camera › Formats, or take the photo from this page.
check-type = This file is not a photo mole can read ({ $type }). Choose a JPEG, PNG or WebP photo.
check-size = This photo is { $size } MB; the largest accepted is { $limit }.
check-empty = This file is empty. Choose another photo.
check-choose-first = Choose a photo first.
check-no-drop = This browser cannot take a dropped file; use the button instead.

## The case page (templates/case.html, case_panel.html, photo_map.html, history.html)
case-title = Your mole check — mole
result-title = Result
verdict-see-a-doctor = Please show this mole to a doctor.
verdict-looks-benign = This mole looks benign, but check it again if it changes.
result-p-malignant = Estimated probability that the lesion is malignant: { $percent }.
result-threshold = The advice is to see a doctor from { $threshold }: set low on purpose, so that few malignant lesions are missed
result-how-well = How well the model does
result-chart-title = The seven diagnoses the model knows
tag-malignant = malignant
result-sent = Photo sent { $date }.
advice-doctor-title = What to do now
advice-doctor-when = Make an appointment within about two weeks with your family doctor (GP) or a dermatologist, and show them this spot.
advice-doctor-sooner = Go sooner, within days, if it bleeds, grows quickly or has changed over the last weeks.
advice-doctor-bring = Bring this result: print it or save it as a PDF with the button below. Most spots a doctor looks at turn out to be harmless; this check is set to send people to a doctor rather than miss a cancer.
advice-benign-title = What to watch for
advice-benign-when = Look at the spot again in about three months (a photo in the same light helps to compare), and see a doctor sooner if you notice any of the ABCDE signs:
abcde-a = Asymmetry: the two halves do not match.
abcde-b = Border: ragged, notched or blurred edges.
abcde-c = Colour: several shades, or black, blue, red or white areas.
abcde-d = Diameter: larger than about 6 mm (a pencil's eraser).
abcde-e = Evolving: it changes in size, shape or colour, or starts to itch, crust or bleed.
result-not-a-diagnosis = This is not a medical diagnosis.
result-notice = It is a computer model's estimate and can be wrong in either direction. Show any mole that changes, bleeds, itches or worries you to a doctor.
action-check-another = Check another photo
action-print = Print or save as PDF
action-my-cases = My cases
technical-title = Technical details
technical-model = Model
technical-case = Case
technical-queue = Time in queue
technical-inference = Time in the model
technical-batch = { $wait } (one pass for { $n } photos)
technical-not-recorded = not recorded
refused-title = The model cannot judge this photo
refused-how-title = How to take a photo it can judge
refused-tip-frame = Only the spot and the skin around it, filling most of the picture.
refused-tip-light = Even daylight, no flash, no shadow over the spot.
refused-tip-sharp = Sharp: hold still, about 10 cm away, and tap the spot to focus.
refused-no-diagnosis = No diagnosis was made from this photo. If the spot worries you, show it to a doctor whatever this page says.
action-send-another = Send another photo
failed-title = The photo could not be analysed
action-try-another = Try another photo
waiting-title = Analysing your photo
waiting-updates = This page updates by itself; there is no need to reload it.
status-queued = Waiting for the model…
status-processing = Analysing the photo…
status-done = Analysis complete.
status-failed = The photo could not be analysed.
status-refused = The model cannot judge this photo.
status-deleted = This case was deleted.
refusal-too-small = This photo is too small for the model to see the skin in enough detail.
refusal-too-dark = This photo is too dark for the model to see the skin.
refusal-overexposed = This photo is too bright: the skin is washed out.
refusal-too-blurry = This photo is too blurry for the model to see the lesion's edges and pattern.
refusal-not-a-lesion = This does not look like a close-up photo of a skin lesion, so the model cannot judge it.
refusal-unknown = The model could not judge this photo.
advice-too-small = Send the photo at its full size (at least a few hundred pixels on each side), not a thumbnail.
advice-too-dark = Take the photo in daylight or good indoor light; avoid your own shadow over the spot.
advice-overexposed = Turn the flash off and move out of direct sunlight; let the camera set the exposure.
advice-too-blurry = Hold the camera still about 10 cm from the skin and tap the spot on the screen to focus before taking the photo.
advice-not-a-lesion = Photograph only the spot on the skin: fill most of the frame with it, in focus and in even light, with nothing else in the picture.
advice-unknown = Take a sharp, well-lit close-up of the spot alone and send it again.
yours-title = Your photo
yours-alt = The photo you sent
delete-button = Delete this case and its photo
delete-confirm = Delete this case and its photo for good?
map-label = Occlusion map: which parts of the photo moved the estimate
map-legend-title = What the model looked at.
map-legend = The square is what the model saw. Each cell was covered in turn: red cells are where covering the skin lowered the estimated chance of malignancy (the model saw warning signs there), blue cells where it raised it. The stronger the colour, the bigger the change (at most { $largest } here). It shows where the model looked, not why, and is not a medical finding.
map-key-red = red
map-key-blue = blue
limits-title = What this check can and cannot do
limits-not-a-device = It is not a medical device and not a diagnosis: a computer model's estimate, which can be wrong either way.
limits-training = It learned from about 10,000 dermatoscope photos (close-ups taken through a skin magnifier) of mostly fair skin. Phone photos and darker skin are less like what it learned from, so it is less reliable on them.
limits-operating-point = In the test photos, of every 100 lesions that were cancer, it told about { $caught } to see a doctor and missed about { $missed }; of every 100 harmless ones, it said about { $cleared } look benign and sent about { $sent } to a doctor without need.
limits-see-a-doctor = See a doctor about any spot that is new, changing, bleeding, itching or that worries you, whatever this page says.
limits-model = Model { $version }
limits-model-link = how it was built and measured
history-title = What happened to this case
history-created-you = You sent the photo.
history-created = The photo was sent.
history-queued = It joined the queue for analysis.
history-requeued = It was put back in the queue after an interruption; nothing was lost.
history-started = The model started analysing it.
history-retrying = A passing problem interrupted the analysis; it will be tried again.
history-completed = The model analysed it.
history-failed = It could not be analysed.
history-refused = The model found that it cannot judge this photo.
history-explained = The model marked which parts of the photo mattered to it.
history-viewed-you = You viewed it.
history-viewed-visitor = Someone with the link viewed it.
history-viewed-staff = Clinic staff viewed it.
history-viewed = It was viewed.
history-reviewed = A clinician reviewed it.
history-deleted-you = You deleted it.
history-deleted = It was deleted.

## The wait (crates/web/src/wait.rs)
wait-delayed = The analysis is delayed: the part of mole that analyses photos is not running at the moment. Your photo is stored safely and will be analysed as soon as it is back. This page keeps waiting; you can also close it and find the case later under “My cases”.
wait-processing = The model is analysing your photo now.
wait-ahead = { $n ->
    [0] Your photo is next in the queue.
    [one] 1 photo is ahead of yours in the queue.
   *[other] { $n } photos are ahead of yours in the queue.
}
wait-expected = Expected in { $wait }.
wait-slow = It is taking longer than usual; your photo is safe and this page keeps waiting.
wait-few-seconds = a few seconds
wait-seconds = about { $n } seconds
wait-minutes = about { $n } minutes

## My cases (templates/my_cases.html)
mine-title = My cases
mine-intro = The photos sent from this browser, newest first. Only this browser can see this list: it is kept by a cookie, so another browser or device has its own list, and clearing this browser's cookies loses it (the links to the cases still work).
mine-none-yet = No photos were sent from this browser yet, or they were deleted.
mine-no-cookie = This browser has not sent a photo yet.
mine-sent = sent { $date }
mine-delete = Delete
mine-delete-label = Delete the case sent { $date } and its photo
mine-truncated = Only the newest { $n } are shown.
mine-check = Check a photo
outcome-see-a-doctor = See a doctor ({ $percent } estimated malignant)
outcome-looks-benign = Looks benign ({ $percent } estimated malignant)
outcome-refused = The model could not judge this photo
outcome-failed = The photo could not be analysed
outcome-waiting = Waiting for the analysis

## Errors (templates/error.html)
error-reference = If this happens again, quote this reference:

## Diagnoses (by HAM10000 code)
dx-akiec = Actinic keratosis / intraepithelial carcinoma (Bowen's disease)
dx-bcc = Basal cell carcinoma
dx-bkl = Benign keratosis-like lesion
dx-df = Dermatofibroma
dx-mel = Melanoma
dx-nv = Melanocytic nevus
dx-vasc = Vascular lesion

## Error messages (crates/web/src/error.rs, by code) and page titles (by HTTP status)
error-not-found = There is no such page or case. Check the link.
error-deleted = This case was deleted; its photo and result are gone.
error-forbidden = Only the person who uploaded the photo can do this.
error-overloaded = The service is busy; please try again in a moment.
error-unavailable = The service is unavailable for a moment; please try again shortly.
error-internal-error = Something went wrong on our side.
error-no-photo = No photo was sent: choose or take a photo first.
error-malformed-upload = The upload could not be read; please send the photo again.
error-file-too-large = The file is larger than { $limit }.
error-image-too-small = The image is { $width }×{ $height } pixels; at least { $min }×{ $min } are needed to see a mole.
error-empty-file = The file is empty.
error-not-an-image = The file is not an image (expected a JPEG, PNG or WebP photo).
error-unsupported-format = { $format } images cannot be read: please send the photo as JPEG (PNG and WebP also work).
error-truncated-image = The { $format } image is truncated: the file ends before the image data.
error-corrupt-image = The { $format } image could not be decoded; the file may be damaged.
error-image-too-large = The image is too large: it has more pixels than mole accepts. Send a smaller photo.
http-400 = The request could not be read
http-403 = Not allowed
http-404 = Not found
http-408 = Too slow
http-410 = Deleted
http-413 = File too large
http-415 = Not a photo mole can read
http-422 = Photo not accepted
http-429 = Busy
http-500 = Something went wrong
http-503 = Unavailable for a moment
error-back = Check another photo

## The model page (templates/model.html)
model-page-title = The model — mole
model-title = The model behind mole
model-runs = mole runs { $version }.
model-intro = It is a convolutional network ({ $architecture }) trained on { $data }. It looks at a photo resized to { $size }×{ $size } pixels and estimates the probability of each of the seven diagnoses below. When the diagnoses counted as malignant add up to { $threshold } or more, the verdict is “see a doctor”.
model-notice-title = Not a medical device.
model-notice = The figures below come from dermatoscopic images taken in clinics; a phone photo of your skin is a different kind of picture, and the model may do worse on it.
model-how-well = How well it does
model-measured = Measured by the project's own evaluator (mole eval, the service's very preprocessing and the { $backend } backend) on { $n } images of { $set } that the model never saw in training. Evaluated { $date }.
model-measured-tta = Measured by the project's own evaluator (mole eval, the service's very preprocessing and the { $backend } backend, with test-time augmentation) on { $n } images of { $set } that the model never saw in training. Evaluated { $date }.
model-sensitivity = Malignant lesions found (sensitivity)
model-missed = missed { $n }
model-specificity = Benign lesions called benign (specificity)
model-auc = Malignant vs benign ROC AUC
model-balanced-accuracy = Balanced accuracy (7 diagnoses)
model-accuracy = Accuracy
model-macro-auc = Macro ROC AUC
model-ece = Calibration error (ECE)
model-ece-value = { $value } percentage points
model-per-class = Per diagnosis
model-col-diagnosis = Diagnosis
model-col-recall = Found (recall)
model-col-precision = Precision
model-col-images = Images
model-not-evaluated = not in the evaluated set
model-full-report = The full report
model-report = { $link }: confusion matrix, ROC curves, reliability diagram, class distribution and the most confident mistakes (in English).
model-no-report = No evaluation report of this model is installed. Run mole eval on a labelled set to make one.
model-origin = Where it comes from
model-training-data = Training data
model-licence = Data licence
model-citation = Citation
model-calibration = Calibration
model-temperature = softmax temperature { $value }
model-card = Model card
model-check = Check a photo
